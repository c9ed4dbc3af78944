"""The protected points of one relay, as the tables the core works on, and the scan call.

``ProtectionCore`` owns one table per role and kind of point (see ``layout``): settings (packed
from validated models), inputs (written by the input image each scan), state (theta, latches,
filters: what thermal memory saves) and outputs (read by outputs and communications). One call
of ``scan`` runs the chosen core once over every point.

Contract: ``scan`` does no per-point Python work and never allocates; it checks its arguments and
hands the tables to the core. Points keep the order they were given in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from softrelay.core import backend
from softrelay.core.layout import (
    BUSBAR_INPUTS,
    BUSBAR_OUTPUTS,
    BUSBAR_STATE,
    MIN_SAMPLES_PER_CYCLE,
    THERMAL_INPUTS,
    THERMAL_OUTPUTS,
    THERMAL_STATE,
    InputMode,
    Quality,
)
from softrelay.core.settings import BusbarSettings, ThermalSettings, pack_busbar, pack_thermal


def initial_thermal_state(settings: np.ndarray) -> np.ndarray:
    """State of thermal points never run: theta at its initial value, nothing latched."""
    state = np.zeros(len(settings), THERMAL_STATE)
    state["theta"] = settings["theta_initial"]
    return state


def initial_busbar_state(n: int) -> np.ndarray:
    """State of busbar points never run: no filter holds a level, no sample taken."""
    state = np.zeros(n, BUSBAR_STATE)
    state["last_stamp"] = -np.inf
    return state


def empty_thermal_inputs(n: int) -> np.ndarray:
    """Thermal inputs before the first measurement: stale, so no point runs on zeros."""
    inputs = np.zeros(n, THERMAL_INPUTS)
    inputs["stamp"] = -np.inf
    inputs["quality"] = Quality.STALE
    return inputs


def empty_busbar_inputs(n: int) -> np.ndarray:
    """Busbar inputs before the first measurement: stale, NaN, no currents."""
    inputs = np.zeros(n, BUSBAR_INPUTS)
    inputs["temp"] = np.nan
    inputs["stamp"] = -np.inf
    inputs["current"] = np.nan
    inputs["quality"] = Quality.STALE
    return inputs


TABLES = (
    "thermal_settings",
    "thermal_inputs",
    "window",
    "thermal_state",
    "thermal_outputs",
    "busbar_settings",
    "busbar_inputs",
    "busbar_state",
    "busbar_outputs",
)


class ProtectionCore:
    """Every protected point of a relay and one scan over all of them per ``scan`` call.

    ``window_length`` is S, the samples per phase of the current windows (points in samples
    mode; a whole number of cycles of ``samples_per_cycle``, itself at least 24 so that the 11th
    harmonic is inside the RMS). The window table is ``self.window[point, phase, sample]``.

    Tables are written and read in place between scans. The core binds them once (the first
    scan); assigning a new array to a table attribute rebinds at the next scan.
    """

    _scanner = None

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name in TABLES:
            super().__setattr__("_scanner", None)

    def __init__(
        self,
        thermal: Sequence[ThermalSettings] = (),
        busbar: Sequence[BusbarSettings] = (),
        *,
        window_length: int = 0,
        samples_per_cycle: int = 32,
        implementation: str | None = None,
    ) -> None:
        self.impl: ModuleType = backend.load(implementation)
        self.thermal_settings = pack_thermal(thermal)
        n_th = len(self.thermal_settings)
        sampled = self.thermal_settings["input_mode"] == InputMode.SAMPLES
        if np.any(sampled):
            if samples_per_cycle < MIN_SAMPLES_PER_CYCLE:
                raise ValueError(
                    f"samples_per_cycle ({samples_per_cycle}) must be at least "
                    f"{MIN_SAMPLES_PER_CYCLE}: the 11th harmonic must lie inside the RMS"
                )
            if window_length < samples_per_cycle or window_length % samples_per_cycle:
                raise ValueError(
                    f"window_length ({window_length}) must be a whole number of cycles of "
                    f"samples_per_cycle ({samples_per_cycle}) samples"
                )
        self.samples_per_cycle = int(samples_per_cycle)
        self.window = np.zeros((n_th, 3, int(window_length)))
        self.thermal_inputs = empty_thermal_inputs(n_th)
        self.thermal_state = initial_thermal_state(self.thermal_settings)
        self.thermal_outputs = np.zeros(n_th, THERMAL_OUTPUTS)

        self.busbar_settings = pack_busbar(busbar)
        n_bb = len(self.busbar_settings)
        self.busbar_inputs = empty_busbar_inputs(n_bb)
        self.busbar_state = initial_busbar_state(n_bb)
        self.busbar_outputs = np.zeros(n_bb, BUSBAR_OUTPUTS)

    @property
    def implementation(self) -> str:
        """"compiled" or "reference"."""
        return self.impl.IMPLEMENTATION

    def scan(self, now: float, dt: float) -> None:
        """Run one scan of ``dt`` seconds ending at monotonic time ``now`` over every point."""
        if not (dt > 0.0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a positive number of seconds, not {dt!r}")
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite monotonic time, not {now!r}")
        if self._scanner is None:
            tables = [getattr(self, name) for name in TABLES]
            self._scanner = self.impl.Scanner(*tables, samples_per_cycle=self.samples_per_cycle)
        self._scanner.scan(float(now), float(dt))
