"""MLX90614 infrared thermometer (Melexis): the driver, and the chip's facts its twin
(``sim.chips.mlx90614``) shares.

Datasheet / application note "SMBus communication with MLX90614":
- RAM read: command 0x00 | address (0x06 ambient Ta, 0x07 object Tobj1), then repeated start
  and three bytes: data low, data high, PEC. Temperature = word x 0.02 K; bit 15 set is the
  chip's error flag.
- EEPROM: command 0x20 | address; emissivity at EEPROM 0x04 (command 0x24) as
  round(65535 x emissivity), 0.1 to 1.0. A write is an erase (writing 0x0000) then the write,
  each followed by 5 ms (EEBUSY), both with a PEC.
- PEC: CRC-8 (x^8 + x^2 + x + 1) over address+W, command, address+R and the data bytes (for a
  read); over address+W, command, data low, data high (for a write). The chip NACKs a write
  whose PEC is wrong.

The driver reads through ``i2c_rdwr`` (so it checks the PEC itself, the same on every kernel)
and verifies every EEPROM write by reading it back.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

from smbus2 import i2c_msg

from softrelay.field.i2c.pec import crc8
from softrelay.field.sensor_bus import ChipOnBus

RAM_TA, RAM_TOBJ1 = 0x06, 0x07
EEPROM = 0x20
EE_EMISSIVITY = 0x04
EEPROM_WRITE_TIME = 0.005  # s, per erase or write


class PecError(OSError):
    """The packet error code did not match: the reading is not trusted."""


def to_celsius(word: int) -> float:
    return word * 0.02 - 273.15


def from_celsius(celsius: float) -> int:
    return max(0, min(0x7FFF, round((celsius + 273.15) / 0.02)))


class MLX90614:
    """Driver: one sensor at ``address`` on an smbus2-like ``bus``."""

    def __init__(self, bus, address: int = 0x5A, sleep: Callable[[float], None] = time.sleep):
        self.bus = bus
        self.address = address
        self.sleep = sleep

    @classmethod
    def on_bus(cls, bus, sensor) -> ChipOnBus:
        """The configured ``sensor`` on ``bus``: opening writes its emissivity to EEPROM
        and verifies it (or reports the one found, when none is configured)."""
        mlx = cls(bus, sensor.address)
        emissivity = sensor.emissivity

        def opener() -> str:
            if emissivity is not None:
                return f"emissivity {mlx.set_emissivity(emissivity):.4f} verified"
            return f"emissivity {mlx.emissivity():.4f} (as found)"
        return ChipOnBus(opener, {"object": mlx.object_temperature,
                                  "ambient": mlx.ambient_temperature})

    def read_word(self, command: int) -> int:
        write = i2c_msg.write(self.address, [command])
        read = i2c_msg.read(self.address, 3)
        self.bus.i2c_rdwr(write, read)
        # smbus2's stub types i2c_msg.__iter__ as returning int (it yields the bytes read)
        low, high, pec = list(read)  # type: ignore[call-overload]
        expected = crc8([self.address << 1, command, (self.address << 1) | 1, low, high])
        if pec != expected:
            raise PecError(errno.EIO, f"PEC 0x{pec:02x}, expected 0x{expected:02x}")
        return low | high << 8

    def temperature(self, ram: int) -> float:
        word = self.read_word(ram)
        if word & 0x8000:
            raise ValueError(f"MLX90614 at 0x{self.address:02x} flags an error (0x{word:04x})")
        return to_celsius(word)

    def object_temperature(self) -> float:
        return self.temperature(RAM_TOBJ1)

    def ambient_temperature(self) -> float:
        return self.temperature(RAM_TA)

    def emissivity(self) -> float:
        return self.read_word(EEPROM | EE_EMISSIVITY) / 65535.0

    def _write_word(self, command: int, word: int) -> None:
        low, high = word & 0xFF, word >> 8
        pec = crc8([self.address << 1, command, low, high])
        self.bus.i2c_rdwr(i2c_msg.write(self.address, [command, low, high, pec]))
        self.sleep(EEPROM_WRITE_TIME)

    def set_emissivity(self, emissivity: float) -> float:
        """Write the emissivity to EEPROM (erase, write, read back); returns what is stored.

        Skipped when already set (EEPROM cells wear). Raises ValueError outside 0.1 to 1.0 and
        OSError when the read-back differs (the cell did not take it).
        """
        if not 0.1 <= emissivity <= 1.0:
            raise ValueError(f"emissivity {emissivity} outside 0.1 to 1.0")
        word = round(emissivity * 65535)
        command = EEPROM | EE_EMISSIVITY
        if self.read_word(command) == word:
            return word / 65535.0
        self._write_word(command, 0x0000)
        self._write_word(command, word)
        stored = self.read_word(command)
        if stored != word:
            raise OSError(errno.EIO, f"emissivity read back 0x{stored:04x}, wrote 0x{word:04x}")
        return stored / 65535.0
