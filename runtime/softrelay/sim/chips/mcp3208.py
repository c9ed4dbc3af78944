"""The MCP3208 ADC as its SPI bus sees it, and the CT inputs it samples (the chip's facts:
the driver's).

Each chip-select period decoded bit by bit; each input a CT's waveform from the plant's
phasor, biased at mid-rail.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from softrelay.field.spi.mcp3208 import FULL_SCALE
from softrelay.sim.chips import ChipInputs


def ct_input(plant, address: str, amps_per_count: float, vref: float,
             every: float = 0.005) -> Callable[[float], float]:
    """The voltage at an ADC input behind a CT and burden biased at vref / 2: the plant
    current's waveform sqrt(2) I cos(2 pi f t + angle); I and the angle refreshed from the
    plant (``sim.plant.PlantModel``) at most every ``every`` s (a burst of 40 ms sees a
    steady load, as a real one)."""
    volts_per_amp = vref / 4096.0 / amps_per_count
    omega = 2.0 * math.pi * plant.cfg.frequency
    cached = [-math.inf, 0.0, 0.0]

    def volts(t: float) -> float:
        if t - cached[0] >= every:
            rms, angle = plant.phasor(address)
            cached[:] = [t, rms, math.radians(angle)]
        return vref / 2.0 + math.sqrt(2.0) * cached[1] * math.cos(omega * t + cached[2]) * (
            volts_per_amp)

    return volts


class MCP3208Twin:
    """The converter as the SPI bus sees it: each chip-select period decoded bit by bit,
    the input sampled at the 5th clock after the start bit, MSB-first result after a null bit
    (LSB-first and zeros if clocked on), high impedance (read as 1) before it."""

    modes = (0, 3)

    def __init__(self, inputs: dict[int, Callable[[float], float]], vref: float = 3.3) -> None:
        """``inputs``: channel -> its voltage at a monotonic time (0..vref)."""
        self.inputs = inputs
        self.vref = vref
        self.conversions = 0

    @classmethod
    def on_bus(cls, sensor, inputs: ChipInputs) -> MCP3208Twin:
        """The twin of a configured ADC: each channel its ``simulate`` names ('ch0': a plant
        current) behind a CT (``ct_input``), the others at mid-rail (no current), each through
        the bus's faults on its ``window``."""
        per_amp = sensor.vref / 4096.0 / sensor.amps_per_count
        channels = {}
        for channel in sensor.channels:
            address = sensor.simulate.get(f"ch{channel}")
            volts = (ct_input(inputs.plant, address, sensor.amps_per_count, sensor.vref)
                     if address else lambda t, v=sensor.vref / 2.0: v)
            channels[channel] = inputs.faults.waveform(sensor.name, "window", volts, per_amp)
        return cls(channels, sensor.vref)

    def _code(self, channel: int, single: bool, at: float) -> int:
        def volts(ch: int) -> float:
            source = self.inputs.get(ch)
            return source(at) if source is not None else 0.0

        v = volts(channel) if single else volts(channel) - volts(channel ^ 1)
        return max(0, min(FULL_SCALE, math.floor(v / self.vref * 4096.0)))

    def transfer(self, data: list[int], at: float | None = None,
                 speed_hz: int = 1_000_000) -> list[int]:
        """One chip-select period: ``data`` clocked in; chip select fell at ``at``."""
        at = time.monotonic() if at is None else at
        bits_in = [byte >> (7 - i) & 1 for byte in data for i in range(8)]
        bits_out = [1] * len(bits_in)
        if 1 in bits_in:
            s = bits_in.index(1)
            cfg = bits_in[s + 1:s + 5]
            if len(cfg) == 4:
                single = bool(cfg[0])
                channel = cfg[1] << 2 | cfg[2] << 1 | cfg[3]
                code = self._code(channel, single, at + (s + 5) / speed_hz)
                self.conversions += 1
                msb = [code >> (11 - i) & 1 for i in range(12)]
                stream = [0, *msb, *msb[::-1][1:]]  # null bit, MSB first, then LSB first
                for i in range(s + 6, len(bits_out)):
                    k = i - (s + 6)
                    bits_out[i] = stream[k] if k < len(stream) else 0
        return [sum(bit << (7 - i) for i, bit in enumerate(bits_out[j:j + 8]))
                for j in range(0, len(bits_out), 8)]
