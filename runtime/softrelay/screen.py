"""The compact live status of ``softrelay run`` on a terminal, drawn from the published snapshot.

It runs in the companion process (never in the scan's) and reads one consistent snapshot per
refresh. On a terminal it redraws in place; elsewhere it stays silent (the log lines of the
events are the record there).
"""

from __future__ import annotations

import os
import string

import numpy as np

from softrelay.config.relay import RelayConfig
from softrelay.core import BusbarFlag, PhasePair, ThermalFlag
from softrelay.core.quantities import QUANTITIES, quantity
from softrelay.core.times import time_to_trip_text
from softrelay.supervision.health import causes_of

PAIRS: dict[int, str] = {PhasePair.AB: "A-B", PhasePair.BC: "B-C", PhasePair.CA: "C-A"}
QUIET_THERMAL = ThermalFlag.TRIP_PICKUP | ThermalFlag.RESET_REJECTED
#: what a point's line shows, by kind: its quantities (``core.quantities``) by name, each
#: with its unit as ``<name>_unit``; a line naming a quantity the kind does not show fails at
#: import
LINES = {
    "thermal": "theta {theta:6.3f} ({capacity_used:5.1f} {capacity_used_unit})  I_eq "
               "{i_eq:7.1f} {i_eq_unit}",
    "busbar": "max rise {max_rise:5.1f} {max_rise_unit}  delta {phase_delta:4.1f} "
              "{phase_delta_unit}",
}


def shown(kind: str, out: np.void) -> dict:
    """Every quantity of a point's outputs row by name, and each one's unit."""
    values: dict = {}
    for q in QUANTITIES[kind]:
        values[q.name] = out[q.field] if q.index is None else out[q.field][q.index]
        values[f"{q.name}_unit"] = q.unit
    return values


def check_lines() -> None:
    """Each line names only quantities its kind shows (raises KeyError naming the first)."""
    for kind, line in LINES.items():
        for name in (f[1] for f in string.Formatter().parse(line) if f[1]):
            quantity(kind, name.removesuffix("_unit"))


check_lines()


def _names(flags: int, kind) -> str:
    return " ".join(f.name for f in kind if f and flags & f) or "-"


def render(config: RelayConfig, tables: dict[str, np.ndarray]) -> list[str]:
    """The status lines for one snapshot."""
    s = tables["stats"][0]
    us = 1e-3
    lines = [
        f"softrelay {config.name}  scan {config.scan.period * 1000:g} ms  scans {int(s['scans'])}"
        f"  overruns {int(s['overruns'])} ({int(s['missed'])} missed)"
        f"  late p50/p99/max {s['late_p50'] * us:.0f}/{s['late_p99'] * us:.0f}/"
        f"{s['late_max'] * us:.0f} us  exec p99 {s['exec_p99'] * us:.0f} us"
        f"  events {int(s['events'])}  {'HEALTHY' if s['healthy'] else 'NOT HEALTHY'}"
    ]
    causes = causes_of(int(s["supervision"]))
    if causes:  # blind is not cool: say what the self-supervision sees
        lines.append(f"  supervision: {', '.join(causes)} ({int(s['points_lost'])} point(s) "
                     f"lost, {int(s['links_down'])} link(s) down)")
    thermal = list(config.thermal_points)
    busbar = list(config.busbar_points)
    for point, out in zip(thermal, tables["thermal"], strict=True):
        when = time_to_trip_text(out["time_to_trip"], out["flags"])
        when = when if when in ("tripped", "never", "unknown") else f"trip in {when}"
        flags = int(out["flags"]) & ~QUIET_THERMAL
        lines.append(f"  {point.name:<12} {LINES['thermal'].format(**shown('thermal', out))}"
                     f"  {when:<14} {_names(flags, ThermalFlag)}")
    for bar, out in zip(busbar, tables["busbar"], strict=True):
        pair = PAIRS.get(int(out["imbalance_pair"]), "")
        lines.append(f"  {bar.name:<12} {LINES['busbar'].format(**shown('busbar', out))} "
                     f"{pair:<3}  {_names(int(out['flags']), BusbarFlag)}")
    coils = "  ".join(f"{o.name} {'ON' if on else '-'}"
                      for o, on in zip(config.outputs, tables["coils"], strict=True))
    lines.append(f"  coils: {coils}")
    return lines


def in_foreground(stream) -> bool:
    """True when this process may write to the terminal: it is a terminal and our process
    group is its foreground group (a background writer would be stopped by SIGTTOU)."""
    try:
        return stream.isatty() and os.tcgetpgrp(stream.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


class TerminalStatus:
    def __init__(self, stream) -> None:
        self.stream = stream
        self.drawn = 0

    def draw(self, lines: list[str]) -> None:
        """Redraw in place; skipped while the relay runs in the background."""
        if not in_foreground(self.stream):
            return
        out = self.stream
        if self.drawn:
            out.write(f"\x1b[{self.drawn}F")
        for line in lines:
            out.write("\x1b[2K" + line + "\n")
        out.flush()
        self.drawn = len(lines)
