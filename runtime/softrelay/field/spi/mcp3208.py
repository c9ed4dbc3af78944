"""MCP3208 12-bit ADC (Microchip): sample windows of three CT inputs; the driver, and the chip's
facts its twin (``sim.chips.mcp3208``) shares.

Datasheet DS21298 section 5 and 6.1 (8-bit SPI ports, mode 0,0 or 1,1): chip select falling
starts a conversion; the first 1 clocked in on DIN is the start bit, then SGL/DIFF and D2 D1 D0
(the channel). The input is sampled from the 4th rising clock edge after the start bit to the
5th falling one; the chip then sends a low null bit and the 12-bit result MSB first (and, if
clocked on with chip select held, LSB first, then zeros). Before the null bit DOUT is high
impedance. With the usual three bytes, 0b00000110 | D2, D1 D0 << 6, 0: the answer's second
byte holds three unknown bits, the null bit (bit 4, must read 0) and B11..B8; the third B7..B0.
A chip that does not answer leaves MISO to its pull-up: the null bit reads 1, and the driver
refuses the burst.

The driver samples the three phase inputs in turn (L1, L2, L3, L1, ...), one conversion per
transfer of one paced SPI message (``port.SpidevPort.message``): S samples per phase over a
whole number of cycles, each phase's row lagging L1's by a third of a sample (``interleave``
3, which the core turns back). Rows come out in amperes, the window's mean (the mid-rail
bias) removed: a CT passes no DC.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Sequence

import numpy as np

from softrelay.field.sensor_bus import ChipOnBus

FULL_SCALE = 4095
BITS_PER_CONVERSION = 24  #: three 8-bit SPI words


def command(channel: int, single_ended: bool = True) -> bytes:
    """The three bytes that convert ``channel`` (0..7): start bit, SGL/DIFF, D2; D1 D0; 0."""
    if not 0 <= channel <= 7:
        raise ValueError(f"MCP3208 channel {channel} is not 0..7")
    return bytes([0x04 | (0x02 if single_ended else 0) | channel >> 2, (channel & 3) << 6, 0])


def result(answer: bytes) -> int:
    """The 12-bit code of a three-byte answer; OSError when its null bit is not low."""
    if answer[1] & 0x10:
        raise OSError(errno.EIO, f"MCP3208 null bit high (answer {answer.hex()}): no chip "
                                 "answering (MISO floats high) or a corrupted transfer")
    return (answer[1] & 0x0F) << 8 | answer[2]


def paced_delays(n: int, interval_us: float, transfer_us: float) -> list[int]:
    """Whole-microsecond delays after each of ``n`` transfers (each ``transfer_us`` long, the
    controller's own time included) whose starts keep to a grid of ``interval_us``: rounding is
    carried forward, so no start is off the grid by more than half a microsecond."""
    if interval_us < transfer_us:
        raise ValueError(f"a conversion every {interval_us:.1f} us is faster than one "
                         f"transfer ({transfer_us:.1f} us): raise the SPI clock, or lower "
                         "the samples per cycle")
    delays, elapsed = [], 0.0
    for k in range(1, n + 1):
        delay = round(k * interval_us - elapsed - transfer_us)
        delays.append(max(0, delay))
        elapsed += transfer_us + delays[-1]
    return delays


class MCP3208:
    """Driver: three inputs of one converter on a ``SpidevPort``-like ``port``."""

    interleave = 3  #: L2 is converted a third of a sample after L1, L3 two thirds

    def __init__(self, port, channels: Sequence[int] = (0, 1, 2), *, amps_per_count: float,
                 frequency: float = 50.0, samples_per_cycle: int = 32, cycles: int = 2,
                 max_speed_hz: int = 1_000_000, mode: int = 0, overhead_us: float = 0.0,
                 timing_tolerance: float = 0.25) -> None:
        if len(channels) != 3:
            raise ValueError("a window is three phases: three channels")
        self.port = port
        self.channels = tuple(channels)
        self.amps_per_count = amps_per_count
        self.samples = samples_per_cycle * cycles
        self.speed = max_speed_hz
        self.interval_us = 1e6 / (frequency * samples_per_cycle * len(self.channels))
        transfer_us = BITS_PER_CONVERSION * 1e6 / max_speed_hz + overhead_us
        n = self.samples * len(self.channels)
        self.delays = paced_delays(n, self.interval_us, transfer_us)
        self.commands = [command(self.channels[k % 3]) for k in range(n)]
        self.nominal = n * self.interval_us * 1e-6  #: s one burst takes
        self.tolerance = timing_tolerance
        self.last_duration = math.nan
        self.clipped = 0
        port.mode = mode
        port.max_speed_hz = max_speed_hz

    @classmethod
    def on_bus(cls, port, sensor, bus, sampling) -> ChipOnBus:
        """The configured ADC ``sensor`` on its chip select ``port`` of ``bus``, its windows
        as ``sampling`` (the configuration's) asks: opening converts each channel once."""
        adc = cls(port, sensor.channels, amps_per_count=sensor.amps_per_count,
                  frequency=sampling.frequency, samples_per_cycle=sampling.samples_per_cycle,
                  cycles=sampling.cycles, max_speed_hz=sensor.speed(bus),
                  mode=sensor.spi_mode(), overhead_us=sensor.overhead_us,
                  timing_tolerance=sensor.timing_tolerance)
        return ChipOnBus(adc.open, {"window": adc.window})

    def convert(self, channel: int) -> int:
        """One conversion, on its own (a check, or a slow reading)."""
        return result(bytes(self.port.xfer2(list(command(channel)))))

    def open(self) -> str:
        codes = [self.convert(c) for c in self.channels]
        return (f"MCP3208 channels {list(self.channels)} answer (codes {codes}); "
                f"{self.samples} samples per phase, a conversion every "
                f"{self.interval_us:.1f} us, {self.nominal * 1000:.1f} ms a window")

    def window(self) -> np.ndarray:
        """One burst: (3, S) phase currents in A, bias removed. OSError: the chip did not
        answer; ValueError (a reading the chip gave but that cannot be trusted): an input
        clipped at 0 or full scale, or the burst's timing off by more than the tolerance."""
        answers = self.port.message(self.commands, self.delays, self.speed)
        self.last_duration = self.port.last_seconds
        codes = np.array([result(a) for a in answers], dtype=np.float64)
        rows = codes.reshape(self.samples, 3).T
        clipped = int(np.count_nonzero((rows <= 0) | (rows >= FULL_SCALE)))
        if clipped:
            self.clipped += 1
            raise ValueError(f"MCP3208: {clipped} samples clipped at 0 or full scale: the "
                             "true RMS would be low (CT burden or range too small)")
        off = self.last_duration / self.nominal - 1.0
        if abs(off) > self.tolerance:
            raise ValueError(f"MCP3208: the burst took {self.last_duration * 1000:.2f} ms, "
                             f"{off:+.1%} off its {self.nominal * 1000:.2f} ms: the window "
                             "does not hold whole cycles")
        return (rows - rows.mean(axis=1, keepdims=True)) * self.amps_per_count
