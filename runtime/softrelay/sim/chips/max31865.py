"""The MAX31865 RTD converter as its SPI bus sees it (the chip's facts: the driver's).

Its registers, the RTD's resistance from the plant's temperature (Callendar-Van Dusen), the
fault status of an open element.
"""

from __future__ import annotations

from collections.abc import Callable

from softrelay.field.spi.max31865 import (
    CONFIG,
    FAULT_CLEAR,
    FAULT_STATUS,
    RTD_MSB,
    VBIAS,
    WRITE,
    resistance,
)
from softrelay.sim.chips import ChipInputs


class MAX31865Twin:
    """The converter as the SPI bus sees it: registers, the RTD from the plant, faults."""

    modes = (1, 3)  #: SPI modes the datasheet allows

    def __init__(self, celsius: Callable[[], float] = lambda: 25.0, r0: float = 100.0,
                 r_ref: float = 430.0) -> None:
        self.celsius = celsius
        self.r0, self.r_ref = r0, r_ref
        self.registers = {CONFIG: 0x00, FAULT_STATUS: 0x00}
        self.open_rtd = False

    @classmethod
    def on_bus(cls, sensor, inputs: ChipInputs) -> MAX31865Twin:
        """The twin of a configured converter (its R0 and R_REF; the RTD's temperature from
        the plant)."""
        return cls(inputs.value("temperature"), sensor.r0, sensor.r_ref)

    def _code(self) -> int:
        if not self.registers[CONFIG] & VBIAS:
            return 0
        celsius = self.celsius()
        if self.open_rtd or celsius != celsius:  # NaN: the element failed open
            self.registers[FAULT_STATUS] |= 0x80 | 0x08
            return 0xFFFF  # full scale with the fault bit
        ratio = resistance(celsius, self.r0) / self.r_ref
        return min(0x7FFF, round(ratio * 32768)) << 1

    def transfer(self, data: list[int], at: float | None = None,
                 speed_hz: int = 0) -> list[int]:
        """One chip-select period (``at``, ``speed_hz``: unused, it converts on its own)."""
        address = data[0]
        if address & WRITE:
            register = address & 0x7F
            if register == CONFIG:
                value = data[1]
                if value & FAULT_CLEAR:
                    self.registers[FAULT_STATUS] = 0
                self.registers[CONFIG] = value & ~FAULT_CLEAR
            return [0] * len(data)
        register, out = address, [0]
        code = self._code()
        words = {CONFIG: self.registers[CONFIG], RTD_MSB: code >> 8, RTD_MSB + 1: code & 0xFF,
                 FAULT_STATUS: self.registers[FAULT_STATUS]}
        for i in range(len(data) - 1):
            out.append(words.get(register + i, 0))
        return out
