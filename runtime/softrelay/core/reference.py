"""The NumPy reference core: same entry point and tables as the compiled ``softrelay._core``.

Readable specification and test oracle. It runs in the scan only when SOFTRELAY_CORE=reference
forces it (see ``softrelay.core.backend``); it is far slower than the compiled core.
"""

from __future__ import annotations

import numpy as np

from softrelay.core.busbar_reference import busbar_scan
from softrelay.core.thermal_reference import thermal_scan

IMPLEMENTATION = "reference"


class Scanner:
    """Same contract as ``softrelay._core.Scanner``: tables bound once, one ``scan`` per scan."""

    def __init__(self, th_settings: np.ndarray, th_inputs: np.ndarray, th_window: np.ndarray,
                 th_state: np.ndarray, th_out: np.ndarray, bb_settings: np.ndarray,
                 bb_inputs: np.ndarray, bb_state: np.ndarray, bb_out: np.ndarray, *,
                 samples_per_cycle: int) -> None:
        self.tables = (th_settings, th_inputs, th_window, th_state, th_out, bb_settings,
                       bb_inputs, bb_state, bb_out)
        self.samples_per_cycle = samples_per_cycle

    def scan(self, now: float, dt: float) -> None:
        run_scan(*self.tables, now, dt, self.samples_per_cycle)


def run_scan(
    th_settings: np.ndarray,
    th_inputs: np.ndarray,
    th_window: np.ndarray,
    th_state: np.ndarray,
    th_out: np.ndarray,
    bb_settings: np.ndarray,
    bb_inputs: np.ndarray,
    bb_state: np.ndarray,
    bb_out: np.ndarray,
    now: float,
    dt: float,
    samples_per_cycle: int,
) -> None:
    """Advance every point by one scan of ``dt`` s ending at ``now``, in place."""
    thermal_scan(th_settings, th_inputs, th_window, th_state, th_out, now, dt, samples_per_cycle)
    busbar_scan(bb_settings, bb_inputs, bb_state, bb_out, now, dt)
