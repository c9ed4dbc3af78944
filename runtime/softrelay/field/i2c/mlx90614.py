"""MLX90614 infrared thermometer (Melexis): driver and its transaction-level twin.

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

    def read_word(self, command: int) -> int:
        write = i2c_msg.write(self.address, [command])
        read = i2c_msg.read(self.address, 3)
        self.bus.i2c_rdwr(write, read)
        low, high, pec = list(read)
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


class MLX90614Twin:
    """The chip as the bus sees it: RAM from the plant, EEPROM with erase-before-write, PEC
    checked on writes (NACK when wrong), EEBUSY for 5 ms after a write (NACK meanwhile)."""

    def __init__(self, address: int = 0x5A, object_c: Callable[[], float] = lambda: 25.0,
                 ambient_c: Callable[[], float] = lambda: 25.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address = address
        self.object_c = object_c
        self.ambient_c = ambient_c
        self.clock = clock
        self.eeprom = {EE_EMISSIVITY: 0xFFFF}
        self.busy_until = -1.0
        self.error_flag = False
        self.writes = 0

    def _word(self, command: int) -> int:
        if command in (RAM_TOBJ1, RAM_TA):
            celsius = self.object_c() if command == RAM_TOBJ1 else self.ambient_c()
            # NaN: the thermopile failed (an injected element fault): the error flag alone
            word = from_celsius(celsius) if celsius == celsius else 0x8000
        elif command & 0xE0 == EEPROM:
            word = self.eeprom.get(command & 0x1F, 0)
        else:
            raise OSError(errno.EREMOTEIO, f"command 0x{command:02x} not acknowledged")
        if self.error_flag and command in (RAM_TOBJ1, RAM_TA):
            word |= 0x8000
        return word

    def transfer(self, write: bytes, read_len: int) -> bytes:
        if self.clock() < self.busy_until:
            raise OSError(errno.EREMOTEIO, "EEBUSY: EEPROM write in progress")
        if not write:
            raise OSError(errno.EREMOTEIO, "a read needs a command first")
        command = write[0]
        if read_len:
            word = self._word(command)
            low, high = word & 0xFF, word >> 8
            pec = crc8([self.address << 1, command, (self.address << 1) | 1, low, high])
            return bytes([low, high, pec])[:read_len]
        if len(write) != 4 or command & 0xE0 != EEPROM:
            raise OSError(errno.EREMOTEIO, "only EEPROM words can be written")
        low, high, pec = write[1], write[2], write[3]
        if pec != crc8([self.address << 1, command, low, high]):
            raise OSError(errno.EREMOTEIO, "PEC error: write refused")
        cell, word = command & 0x1F, low | high << 8
        old = self.eeprom.get(cell, 0)
        # Not erased first: the cell's bits merge (what the datasheet warns of).
        self.eeprom[cell] = word if word == 0 or old == 0 else old | word
        self.busy_until = self.clock() + EEPROM_WRITE_TIME
        self.writes += 1
        return b""
