"""The TMP117 contact thermometer as its I2C bus sees it (the chip's facts: the driver's).

The register pointer, MSB-first words, 8000h until the first conversion, Data_Ready, the
Device_ID.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

from softrelay.field.i2c.tmp117 import (
    CONFIGURATION,
    DATA_READY,
    DEVICE_ID,
    ID_TMP117,
    NOT_CONVERTED,
    TEMP_RESULT,
    from_celsius,
)
from softrelay.sim.chips import ChipInputs


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

    @classmethod
    def on_bus(cls, sensor, inputs: ChipInputs) -> TMP117Twin:
        """The twin of a configured sensor (its address; the temperature from the plant)."""
        return cls(sensor.address, inputs.value("temperature"))

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
