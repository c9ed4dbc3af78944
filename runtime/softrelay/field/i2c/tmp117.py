"""TMP117 precision contact thermometer (TI): driver and its transaction-level twin.

Datasheet SNOSD82: registers are 16 bits, most significant byte first; a read is a write of the
register pointer, a repeated start and two bytes. Temp_Result (00h) is two's complement with
7.8125 m°C per LSB and reads 8000h (-256 °C) after a reset until the first conversion completes:
the driver reports that as "no conversion yet", never as a temperature. Configuration (01h)
resets to 0220h; bit 13 is Data_Ready. Device_ID (0Fh) reads 0117h; the driver checks it when it
opens, so a wrong chip at the address is an error, not wrong readings.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

from smbus2 import i2c_msg

from softrelay.field.device import NoReadingError

TEMP_RESULT, CONFIGURATION, DEVICE_ID = 0x00, 0x01, 0x0F
ID_TMP117 = 0x0117
NOT_CONVERTED = 0x8000
LSB_C = 0.0078125
DATA_READY = 1 << 13


def to_celsius(word: int) -> float:
    return (word - 0x10000 if word & 0x8000 else word) * LSB_C


def from_celsius(celsius: float) -> int:
    raw = max(-0x7FFF, min(0x7FFF, round(celsius / LSB_C)))
    return raw & 0xFFFF


class TMP117:
    """Driver: one sensor at ``address`` (0x48 to 0x4B) on an smbus2-like ``bus``."""

    def __init__(self, bus, address: int = 0x48) -> None:
        self.bus = bus
        self.address = address

    def read_register(self, register: int) -> int:
        read = i2c_msg.read(self.address, 2)
        self.bus.i2c_rdwr(i2c_msg.write(self.address, [register]), read)
        high, low = list(read)
        return high << 8 | low

    def open(self) -> None:
        """Check the chip is a TMP117 (Device_ID, bits 11:0 = 117h)."""
        ident = self.read_register(DEVICE_ID)
        if ident & 0x0FFF != ID_TMP117:
            raise OSError(errno.ENODEV, f"0x{self.address:02x} is not a TMP117 "
                                        f"(Device_ID 0x{ident:04x})")

    def temperature(self) -> float:
        word = self.read_register(TEMP_RESULT)
        if word == NOT_CONVERTED:
            raise NoReadingError(f"TMP117 at 0x{self.address:02x}: no conversion yet (8000h)")
        return to_celsius(word)


class TMP117Twin:
    """The chip as the bus sees it: register pointer, MSB-first words, -256 °C until its first
    conversion (``first_conversion`` s after power-up), Data_Ready set by a conversion and
    cleared by reading the configuration register."""

    def __init__(self, address: int = 0x48, celsius: Callable[[], float] = lambda: 25.0,
                 clock: Callable[[], float] = time.monotonic, first_conversion: float = 0.0155,
                 device_id: int = ID_TMP117) -> None:
        self.address = address
        self.celsius = celsius
        self.clock = clock
        self.powered_at = clock()
        self.first_conversion = first_conversion
        self.device_id = device_id
        self.pointer = TEMP_RESULT
        self.configuration = 0x0220

    def _register(self, register: int) -> int:
        converted = self.clock() - self.powered_at >= self.first_conversion
        if register == TEMP_RESULT:
            celsius = self.celsius()  # NaN: no reading (an injected element fault)
            return from_celsius(celsius) if converted and celsius == celsius else NOT_CONVERTED
        if register == CONFIGURATION:
            value = self.configuration | (DATA_READY if converted else 0)
            return value
        if register == DEVICE_ID:
            return self.device_id
        raise OSError(errno.EREMOTEIO, f"register 0x{register:02x} not acknowledged")

    def transfer(self, write: bytes, read_len: int) -> bytes:
        if write:
            self.pointer = write[0]
            if len(write) == 3 and self.pointer == CONFIGURATION:
                self.configuration = (write[1] << 8 | write[2]) & ~DATA_READY
        if not read_len:
            return b""
        word = self._register(self.pointer)
        return bytes([word >> 8, word & 0xFF])[:read_len]
