"""Small helpers to drive a ProtectionCore the way the input image will."""

from __future__ import annotations

import numpy as np

from softrelay.core import ProtectionCore
from softrelay.core.layout import Quality

BALANCED = (0.0, -120.0, 120.0)


def set_currents(core: ProtectionCore, amps, now: float, angles=BALANCED, point=None) -> None:
    """Good, fresh phase currents (magnitudes broadcast over points and phases)."""
    rows = slice(None) if point is None else point
    core.thermal_inputs["mag"][rows] = amps
    core.thermal_inputs["ang"][rows] = angles
    core.thermal_inputs["stamp"][rows] = now
    core.thermal_inputs["quality"][rows] = Quality.GOOD


def set_temperatures(core: ProtectionCore, temps, now: float, point=None) -> None:
    """Good, fresh temperatures (A, B, C, ambient) sampled at ``now``."""
    rows = slice(None) if point is None else point
    core.busbar_inputs["temp"][rows] = temps
    core.busbar_inputs["stamp"][rows] = now
    core.busbar_inputs["quality"][rows] = Quality.GOOD


def run_until(core: ProtectionCore, dt: float, scans: int, predicate, t0: float = 0.0):
    """Scan with unchanged inputs (stamps refreshed) until ``predicate(core)`` holds per point.

    Returns the first scan number (1-based) at which it held for each thermal point, 0 where
    it never did within ``scans``.
    """
    first = np.zeros(len(core.thermal_settings), dtype=np.int64)
    t = t0
    for k in range(1, scans + 1):
        t += dt
        core.thermal_inputs["stamp"] = t
        core.scan(t, dt)
        hit = predicate(core) & (first == 0)
        first[hit] = k
        if np.all(first):
            break
    return first
