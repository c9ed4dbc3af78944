"""Banks of N points for the benchmarks, with realistic inputs refreshed before every scan."""

from __future__ import annotations

import numpy as np

from softrelay.core import BusbarSettings, ProtectionCore, Quality, ThermalSettings

SAMPLES_PER_CYCLE = 32
WORKLOADS = ("phasors", "samples32", "busbar")


class Workload:
    """One relay of ``n`` points of one kind; ``advance`` makes the next scan's inputs fresh."""

    def __init__(self, kind: str, n: int, implementation: str, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        self.kind = kind
        self.now = 100.0
        self.dt = 0.01
        motor = dict(i_b=100.0, t_heat=600.0, t_cool=1800.0, k2=3.0, kst=2.0)
        if kind == "phasors":
            self.core = ProtectionCore([ThermalSettings(**motor)] * n,
                                       implementation=implementation)
        elif kind == "samples32":
            self.core = ProtectionCore(
                [ThermalSettings(**motor, input_mode="samples")] * n,
                window_length=SAMPLES_PER_CYCLE, samples_per_cycle=SAMPLES_PER_CYCLE,
                implementation=implementation,
            )
        elif kind == "busbar":
            self.core = ProtectionCore(busbar=[BusbarSettings()] * n,
                                       implementation=implementation)
        else:
            raise ValueError(kind)
        core = self.core
        x = core.thermal_inputs
        x["mag"] = rng.uniform(50.0, 150.0, (n, 3)) if kind != "busbar" else 0.0
        x["ang"] = np.array([0.0, -120.0, 120.0]) + rng.normal(0.0, 5.0, (len(x), 3))
        x["quality"] = Quality.GOOD
        wt = 2.0 * np.pi * np.arange(core.window.shape[2]) / SAMPLES_PER_CYCLE
        shift = np.array([0.0, -2.0, 2.0])[:, None] * np.pi / 3.0
        core.window[:] = 141.0 * (np.cos(wt + shift) + 0.1 * np.cos(5 * (wt + shift)))
        b = core.busbar_inputs
        b["temp"] = np.column_stack([rng.uniform(30.0, 60.0, (n if kind == "busbar" else 0, 3)),
                                     np.full(len(b), 25.0)]) if len(b) else b["temp"]
        b["quality"] = Quality.GOOD
        b["current"] = rng.uniform(200.0, 220.0, (len(b), 3))
        self.noise = rng.normal(0.0, 0.2, b["temp"].shape)

    def advance(self) -> tuple[tuple, dict]:
        """Next scan's time and fresh stamps (pytest-benchmark setup: not timed)."""
        self.now += self.dt
        self.core.thermal_inputs["stamp"] = self.now
        self.core.busbar_inputs["stamp"] = self.now
        self.core.busbar_inputs["temp"] += self.noise
        self.noise = -self.noise
        return (self.now, self.dt), {}

    def input_bytes(self) -> np.ndarray:
        """The bytes one scan reads as inputs, as one contiguous buffer."""
        core = self.core
        parts = [core.thermal_inputs.view(np.uint8).ravel(), core.window.view(np.uint8).ravel(),
                 core.busbar_inputs.view(np.uint8).ravel()]
        return np.concatenate(parts)
