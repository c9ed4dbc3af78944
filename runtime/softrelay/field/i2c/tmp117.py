"""TMP117 precision contact thermometer (TI): the driver, and the chip's facts its twin
(``sim.chips.tmp117``) shares.

Datasheet SNOSD82: registers are 16 bits, most significant byte first; a read is a write of the
register pointer, a repeated start and two bytes. Temp_Result (00h) is two's complement with
7.8125 m°C per LSB and reads 8000h (-256 °C) after a reset until the first conversion completes:
the driver reports that as "no conversion yet", never as a temperature. Configuration (01h)
resets to 0220h; bit 13 is Data_Ready. Device_ID (0Fh) reads 0117h; the driver checks it when it
opens, so a wrong chip at the address is an error, not wrong readings.
"""

from __future__ import annotations

import errno

from smbus2 import i2c_msg

from softrelay.field.device import NoReadingError
from softrelay.field.sensor_bus import ChipOnBus

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

    @classmethod
    def on_bus(cls, bus, sensor) -> ChipOnBus:
        """The configured ``sensor`` on ``bus``: opening checks its Device_ID."""
        tmp = cls(bus, sensor.address)

        def opener() -> str:
            tmp.open()
            return "TMP117 identified"

        return ChipOnBus(opener, {"temperature": tmp.temperature})

    def read_register(self, register: int) -> int:
        read = i2c_msg.read(self.address, 2)
        self.bus.i2c_rdwr(i2c_msg.write(self.address, [register]), read)
        # smbus2's stub types i2c_msg.__iter__ as returning int (it yields the bytes read)
        high, low = list(read)  # type: ignore[call-overload]
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
