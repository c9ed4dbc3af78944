"""Commands: reset, acknowledge and preset theta, queued and applied at the start of a scan.

Commands arrive from anywhere (a GPIO input, the Modbus slave, the terminal) on any thread; they
wait in the queue and the scan applies all of them at its start, never in the middle of one.
Each is recorded as an event with its outcome.

- reset: the core resets latched trips (refused while theta >= theta_reset: the core says so
  with RESET_REJECTED) and latched coils whose flags have gone are released, judged on the
  flags of the reset's own scan (after the core cleared the trip), so a latched trip coil
  drops in the scan that reset the trip;
- acknowledge: latched coils whose flags have gone are released (annunciator behaviour); trips
  stay latched;
- preset: theta of the named points is set to the given value;
- clear_statistics: the scan's lateness and execution histograms and its overrun counts start
  again (the scan counter goes on), as after commissioning or a change of period; recorded
  as a command of the scan.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence

from softrelay.core import Command, ProtectionCore, ThermalFlag
from softrelay.core.commands import KINDS, Request

__all__ = ["KINDS", "CommandQueue", "Request"]  # the vocabulary: core.commands

class CommandQueue:
    """Thread-safe queue of requests, drained by the scan."""

    def __init__(self, thermal_names: Sequence[str],
                 release_latches: Callable[[ProtectionCore], list[str]] | None = None,
                 record: Callable[[str, str, str, float], object] | None = None,
                 clear_statistics: Callable[[], None] | None = None) -> None:
        self.rows = {name: i for i, name in enumerate(thermal_names)}
        self.release_latches = release_latches
        self.clear_statistics = clear_statistics
        self.record = record
        self._pending: collections.deque[Request] = collections.deque()
        self._lock = threading.Lock()
        self._applied: list[tuple[Request, list[int]]] = []
        self._before: dict[int, list[float]] = {}  #: a preset's theta before it, by request

    def put(self, request: Request) -> None:
        unknown = [p for p in request.points if p not in self.rows]
        if unknown:
            raise ValueError(f"no thermal point named {', '.join(map(repr, unknown))}")
        with self._lock:
            self._pending.append(request)

    def _rows(self, request: Request) -> list[int]:
        return [self.rows[p] for p in request.points] if request.points else list(
            self.rows.values())

    def apply(self, core: ProtectionCore, now: float) -> None:
        """Scan stage before the core: turn pending requests into command bits."""
        with self._lock:
            requests = list(self._pending)
            self._pending.clear()
        x = core.thermal_inputs
        for request in requests:
            rows = self._rows(request)
            if request.kind == "reset":
                for row in rows:
                    x["command"][row] |= Command.RESET
            elif request.kind == "preset":
                self._before[id(request)] = [float(core.thermal_outputs["theta"][r])
                                             for r in rows]  # old -> new in its event
                for row in rows:
                    x["command"][row] |= Command.PRESET
                    x["preset_theta"][row] = request.value
            elif request.kind == "clear_statistics":
                if self.clear_statistics is not None:
                    self.clear_statistics()
                rows = []
            self._applied.append((request, rows))

    def settle(self, core: ProtectionCore, now: float) -> None:
        """Scan stage after the core: clear the bits, release latches, record outcomes."""
        if not self._applied:
            return
        core.thermal_inputs["command"] = 0
        names = list(self.rows)
        flags = core.thermal_outputs["flags"]
        for request, rows in self._applied:
            released = (self.release_latches(core) if request.kind in ("reset", "acknowledge")
                        and self.release_latches is not None else [])
            detail = [f"from {request.source}"]
            if request.kind == "reset":
                refused = [names[r] for r in rows if flags[r] & ThermalFlag.RESET_REJECTED]
                still = [names[r] for r in rows if flags[r] & ThermalFlag.TRIP]
                if refused:
                    detail.append(f"refused while theta >= theta_reset: {', '.join(refused)}")
                elif not still:
                    detail.append("trips reset")
            if request.kind == "preset":
                before = self._before.pop(id(request), [])
                detail.append("theta " + ", ".join(f"{b:.4g}" for b in before)
                              + f" -> {request.value:g}" if before else
                              f"theta = {request.value:g}")
            if released:
                detail.append(f"released coils: {', '.join(released)}")
            if self.record is None:
                continue
            if request.kind == "clear_statistics":
                self.record("command", "scan", f"statistics cleared {detail[0]}", now)
            else:
                target = ",".join(request.points) if request.points else "all"
                self.record("command", f"{request.kind} {target}", "; ".join(detail), now)
        self._applied.clear()
