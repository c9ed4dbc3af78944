"""The compact live status of ``softrelay run`` on a terminal, drawn from the published snapshot.

It runs in the companion process (never in the scan's) and reads one consistent snapshot per
refresh. On a terminal it redraws in place; elsewhere it stays silent (the log lines of the
events are the record there).
"""

from __future__ import annotations

import os

import numpy as np

from softrelay.config.relay import RelayConfig
from softrelay.core import BusbarFlag, PhasePair, ThermalFlag
from softrelay.core.times import time_to_trip_text
from softrelay.supervision.health import causes_of

PAIRS = {PhasePair.AB: "A-B", PhasePair.BC: "B-C", PhasePair.CA: "C-A"}
QUIET_THERMAL = ThermalFlag.TRIP_PICKUP | ThermalFlag.RESET_REJECTED


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
        lines.append(f"  {point.name:<12} theta {out['theta']:6.3f} ({out['capacity_used']:5.1f} %)"
                     f"  I_eq {out['i_eq']:7.1f} A  {when:<14} {_names(flags, ThermalFlag)}")
    for point, out in zip(busbar, tables["busbar"], strict=True):
        pair = PAIRS.get(int(out["imbalance_pair"]), "")
        lines.append(f"  {point.name:<12} max rise {out['max_rise']:5.1f} C  delta "
                     f"{out['phase_delta']:4.1f} C {pair:<3}  "
                     f"{_names(int(out['flags']), BusbarFlag)}")
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
