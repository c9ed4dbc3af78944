"""MAX31865 RTD-to-digital converter (PT100 / PT1000): the driver, and the chip's facts its
twin (``sim.chips.max31865``) shares.

Datasheet (Maxim MAX31865): SPI mode 1 or 3. A transfer starts with an address byte: bit 7 clear
to read, set to write (configuration 00h is written at 80h). Configuration bits: D7 VBIAS on,
D6 automatic conversion, D5 one-shot, D4 3-wire, D3:D2 fault detection, D1 fault status clear,
D0 50 Hz filter. RTD data 01h (MSB), 02h (LSB): a 15-bit ratio to R_REF in bits 15:1, bit 0
set on any fault. Fault status 07h: D7 RTD high threshold, D6 RTD low threshold,
D5 REFIN- > 0.85 VBIAS, D4 REFIN- < 0.85 VBIAS (FORCE- open), D3 RTDIN- < 0.85 VBIAS
(FORCE- open), D2 over/undervoltage.

Every reading also reads back the configuration (one transfer from 00h): a chip that reset,
is absent or answered through interference is an I/O error, never a temperature.

Temperature from resistance by Callendar-Van Dusen (IEC 60751): R(T) = R0 (1 + A T + B T^2)
for T >= 0, + R0 C (T - 100) T^3 below 0 C; inverted exactly (the quadratic above 0 C, Newton
below), not by a linear approximation.
"""

from __future__ import annotations

import errno
import math

from softrelay.field.sensor_bus import ChipOnBus

A, B, C = 3.9083e-3, -5.775e-7, -4.183e-12
CONFIG, RTD_MSB, FAULT_STATUS = 0x00, 0x01, 0x07
WRITE = 0x80
VBIAS, AUTO, THREE_WIRE, FAULT_CLEAR, FILTER_50HZ = 0x80, 0x40, 0x10, 0x02, 0x01
FAULT_NAMES = {0x80: "RTD high threshold", 0x40: "RTD low threshold",
               0x20: "REFIN- > 0.85 VBIAS", 0x10: "REFIN- < 0.85 VBIAS (FORCE- open)",
               0x08: "RTDIN- < 0.85 VBIAS (FORCE- open)", 0x04: "over/undervoltage"}


def resistance(celsius: float, r0: float) -> float:
    """Callendar-Van Dusen: the RTD's resistance at a temperature."""
    t = celsius
    r = r0 * (1.0 + A * t + B * t * t)
    if t < 0.0:
        r += r0 * C * (t - 100.0) * t**3
    return r


def temperature(ohms: float, r0: float) -> float:
    """Callendar-Van Dusen inverted: the temperature of a resistance (-200 to 850 C)."""
    if ohms >= r0:
        return (-A + math.sqrt(A * A - 4.0 * B * (1.0 - ohms / r0))) / (2.0 * B)
    t = (ohms / r0 - 1.0) / A  # Newton from the linear estimate
    for _ in range(20):
        f = resistance(t, r0) - ohms
        df = r0 * (A + 2.0 * B * t + C * (4.0 * t**3 - 300.0 * t * t))
        step = f / df
        t -= step
        if abs(step) < 1e-9:
            break
    return t


class RTDFaultError(ValueError):
    """The converter reports a fault: open or shorted RTD, or a reference out of range."""


class MAX31865:
    """Driver: one converter on an spidev-like ``spi`` (already opened on its bus and CS)."""

    def __init__(self, spi, r0: float = 100.0, r_ref: float = 430.0, wires: int = 3,
                 filter_50hz: bool = True, max_speed_hz: int = 1_000_000,
                 mode: int = 1) -> None:
        self.spi = spi
        self.r0, self.r_ref = r0, r_ref
        self.config = VBIAS | AUTO | (THREE_WIRE if wires == 3 else 0) | (
            FILTER_50HZ if filter_50hz else 0)
        spi.mode = mode
        spi.max_speed_hz = max_speed_hz

    @classmethod
    def on_bus(cls, port, sensor, bus, sampling) -> ChipOnBus:
        """The configured converter ``sensor`` on its chip select ``port`` of ``bus``
        (``sampling``: unused, it converts on its own): opening configures it."""
        rtd = cls(port, sensor.r0, sensor.r_ref, sensor.wires, sensor.filter_50hz,
                  sensor.speed(bus), sensor.spi_mode())

        def opener() -> str:
            rtd.open()
            return "MAX31865 configured"

        return ChipOnBus(opener, {"temperature": rtd.temperature})

    def read(self, register: int, count: int) -> list[int]:
        return self.spi.xfer2([register & 0x7F] + [0] * count)[1:]

    def write(self, register: int, value: int) -> None:
        self.spi.xfer2([WRITE | register, value])

    def open(self) -> None:
        """Configure (bias on, automatic conversion, wiring, filter) and check it stuck."""
        self.write(CONFIG, self.config | FAULT_CLEAR)
        got = self.read(CONFIG, 1)[0]
        if got & ~FAULT_CLEAR & 0xFF != self.config:
            raise OSError(errno.EIO, f"MAX31865 configuration read back 0x{got:02x}, wrote "
                                     f"0x{self.config:02x} (no chip, or wiring)")

    def temperature(self) -> float:
        """One read of the configuration and the RTD data together: a configuration that is
        not the one written means the chip reset (a brown-out), is absent (MISO reads 0xFF) or
        the transfer was corrupted; the reading is refused and the configuration rewritten."""
        config, msb, lsb = self.read(CONFIG, 3)
        if config != self.config:
            self.write(CONFIG, self.config | FAULT_CLEAR)
            why = ("no chip answering: MISO reads 0xFF" if (config, msb, lsb) == (0xFF,) * 3
                   else "chip reset or transfer corrupted")
            raise OSError(errno.EIO, f"MAX31865 configuration read 0x{config:02x}, expected "
                                     f"0x{self.config:02x} ({why}); rewritten")
        code = msb << 8 | lsb
        if code & 1:
            status = self.read(FAULT_STATUS, 1)[0]
            self.write(CONFIG, self.config | FAULT_CLEAR)
            names = ", ".join(n for bit, n in FAULT_NAMES.items() if status & bit) or "fault"
            raise RTDFaultError(f"MAX31865: {names} (status 0x{status:02x})")
        ohms = (code >> 1) / 32768.0 * self.r_ref
        return temperature(ohms, self.r0)
