"""An accelerated demonstration of the protection core on a small simulated plant.

One scan is one simulated second and nothing waits: this shows the maths (a motor overload
that alarms, trips and cools into start inhibit until a start is permitted again; a busbar
joint on phase C that slowly overheats), not real-time behaviour. The deterministic scan loop,
I/O, coils and the Modbus slave are the runtime's job (``softrelay run``, issue 3).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator

import numpy as np

from softrelay.core import (
    BusbarFlag,
    BusbarSettings,
    Command,
    PhasePair,
    ProtectionCore,
    Quality,
    ThermalFlag,
    ThermalSettings,
)

MOTOR = ThermalSettings(
    i_b=100.0, t_heat=300.0, t_cool=900.0, k2=3.0, theta_trip=1.2, theta_al1=0.9,
    theta_al2=1.05, theta_inhibit=0.8, theta_reset=0.7,
)
BUSBAR = BusbarSettings(pickup_warning=10.0, pickup_imbalance=20.0, pickup_joint=30.0,
                        kalman_q=1e-4)
PAIRS = {PhasePair.AB: "A-B", PhasePair.BC: "B-C", PhasePair.CA: "C-A"}


MOTOR_LOAD = 150.0  # A: 1.5 I_B, an overload that trips after a few minutes


def busbar_temperatures(seconds: int) -> Iterator[tuple[int, np.ndarray]]:
    """Busbar temperatures (A, B, C, ambient) second by second: a loose joint on phase C."""
    rng = np.random.default_rng(1)
    for t in range(seconds):
        joint_heat = 40.0 * (1.0 - math.exp(-t / 600.0))
        yield t, np.array([36.0, 36.5, 36.0 + joint_heat, 25.0]) + rng.normal(0.0, 0.3, 4)


def describe(flags: int, names: type[enum.IntFlag]) -> str:
    return "|".join(f.name for f in names if f.name and flags & f) or "-"


def main(seconds: int = 1800, every: int = 60) -> int:
    """Run the demonstration; print a line per ``every`` simulated seconds and on flag changes.

    The breaker opens when the relay trips. The operator resets the trip once theta is below
    the reset level and restarts the motor once the start inhibit has released.
    """
    core = ProtectionCore([MOTOR], [BUSBAR])
    breaker_closed = True
    print(f"softrelay core demonstration ({core.implementation} core), 1 scan = 1 s simulated")
    print("   t  theta  cap%  I_eq A  time_to_trip  motor flags              | busbar")
    last_flags = (-1, -1)
    for t, temps in busbar_temperatures(seconds):
        now = float(t + 1)
        x = core.thermal_inputs
        x["mag"] = MOTOR_LOAD if breaker_closed else 0.0
        x["ang"] = (0.0, -120.0, 120.0)
        x["stamp"] = now
        x["quality"] = Quality.GOOD
        x["command"] = 0
        out = core.thermal_outputs[0]  # the last scan's, as an operator sees it
        tripped = bool(out["flags"] & ThermalFlag.TRIP)
        if tripped and out["theta"] < MOTOR.theta_reset:
            x["command"] = Command.RESET  # the operator resets once the relay will accept it
        elif not breaker_closed and not tripped and not out["flags"] & ThermalFlag.START_INHIBIT:
            breaker_closed = True  # and restarts once a start is permitted
        b = core.busbar_inputs
        b["temp"] = temps
        b["stamp"] = now
        b["quality"] = Quality.GOOD
        b["current"] = (400.0, 402.0, 398.0)
        core.scan(now, 1.0)
        out = core.thermal_outputs[0]
        if out["flags"] & ThermalFlag.TRIP:
            breaker_closed = False
        bus = core.busbar_outputs[0]
        pair = PAIRS.get(PhasePair(int(bus["imbalance_pair"])), "")
        line = (
            f"{describe(int(out['flags']), ThermalFlag):<24} | max rise "
            f"{bus['max_rise']:5.1f} C, delta {bus['phase_delta']:4.1f} C {pair}, "
            f"{describe(int(bus['flags']), BusbarFlag)}"
        )
        now_flags = (int(out["flags"]), int(bus["flags"]))
        if t % every == 0 or now_flags != last_flags:
            ttt = out["time_to_trip"]
            ttt_text = "never" if math.isinf(ttt) else f"{ttt:8.1f} s"
            print(f"{t + 1:4d}  {out['theta']:5.3f} {out['capacity_used']:5.1f} "
                  f"{out['i_eq']:7.1f}  {ttt_text:>12}  {line}")
        last_flags = now_flags
    return 0


def command(args) -> int:
    """``softrelay demo``: the demonstration for ``--seconds``, a line every ``--every``."""
    return main(args.seconds, args.every)


if __name__ == "__main__":
    raise SystemExit(main())
