# Stub of the compiled module built from ext/softrelay/_core.pyx (and _core.pxd).
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Self, disjoint_base

# a table of packed structs (a structured array of a softrelay.core.layout dtype)
_Table: TypeAlias = NDArray[np.void]
_Doubles: TypeAlias = NDArray[np.float64]

IMPLEMENTATION: Final[str]

@disjoint_base
class Scanner:
    def __new__(
        cls,
        th_settings: _Table,
        th_inputs: _Table,
        th_window: _Doubles,
        th_state: _Table,
        th_out: _Table,
        bb_settings: _Table,
        bb_inputs: _Table,
        bb_state: _Table,
        bb_out: _Table,
        samples_per_cycle: int,
    ) -> Self: ...
    def scan(self, now: float, dt: float) -> None: ...

def run_scan(
    th_settings: _Table,
    th_inputs: _Table,
    th_window: _Doubles,
    th_state: _Table,
    th_out: _Table,
    bb_settings: _Table,
    bb_inputs: _Table,
    bb_state: _Table,
    bb_out: _Table,
    now: float,
    dt: float,
    samples_per_cycle: int,
) -> None: ...
def sincos_degrees(deg: _Doubles) -> tuple[_Doubles, _Doubles]: ...
def sequence_from_phasors(mag: _Doubles, ang: _Doubles) -> tuple[_Doubles, _Doubles]: ...
def sequence_from_magnitudes(mag: _Doubles) -> tuple[_Doubles, _Doubles, NDArray[np.bool_]]: ...
def window_rms_and_phasor(
    window: _Doubles, samples_per_cycle: int
) -> tuple[_Doubles, _Doubles, _Doubles]: ...
def element_steps(
    active: NDArray[np.uint8],
    timer: _Doubles,
    value: _Doubles,
    threshold: _Doubles,
    hysteresis: _Doubles,
    pickup: _Doubles,
    dt: float,
) -> None: ...
def constants() -> dict[str, float]: ...
