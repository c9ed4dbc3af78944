"""The relay's thermal memory: restored at start by the declared power-loss policy, and
checkpointed while it runs (the ``checkpoint`` stage) and at stop.

The scan only copies its state (microseconds); the document is built and written atomically
on the checkpointer's thread (``records.thermal_memory.Checkpointer``), so a slow or refusing
disk never delays a scan: it is the self-test "thermal memory", with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from softrelay.config.relay import RelayConfig
from softrelay.core import ProtectionCore
from softrelay.records.events import EventRecorder
from softrelay.records.thermal_memory import Checkpointer, Restored, restore, snapshot


class ThermalMemory:
    """``restore()`` once (events say how), then the ``checkpoint`` stage every scan, and
    ``copy()`` for the last checkpoint. ``latches()``: the coils' latches, kept with theta."""

    def __init__(self, config: RelayConfig, path: Path, thermal_names: Sequence[str],
                 core: ProtectionCore, events: EventRecorder) -> None:
        self.config = config
        self.path = path
        self.thermal_names = list(thermal_names)
        self.core = core
        self.events = events
        self.latches: Callable[[], dict[str, bool]] = dict
        self.every = config.state.checkpoint_interval  #: s between checkpoints
        self._last: float | None = None
        self.restored: Restored | None = None
        self.checkpointer: Checkpointer | None = None

    def restore(self) -> Restored:
        """Theta and counters from the state file by the power-loss policy, the event
        numbering carried on; recorded as events. Then the checkpointer is ready."""
        state = self.config.state
        result = restore(self.path, self.thermal_names, self.core.thermal_settings,
                         self.core.thermal_state, state.power_loss, state.preset_theta)
        self.restored = result
        events = self.events
        if result.extra.get("event_seq"):
            events.next_seq = max(events.next_seq, int(result.extra["event_seq"]))
        outage = f", outage {result.outage:.0f} s" if result.outage is not None else ""
        events.record("system", "memory", f"thermal memory {result.outcome}, power-loss "
                      f"policy {result.policy}{outage}")
        for message in result.messages:
            events.record("system", "memory", message)
        self.checkpointer = Checkpointer(
            self.path, on_error=lambda why: events.record("fault", "memory", why),
            on_clear=lambda why: events.record("system", "memory", why))
        return result

    def __call__(self, core: ProtectionCore, now: float) -> None:
        """The ``checkpoint`` stage: a copy to the checkpointer every ``every`` s."""
        if self._last is None:
            self._last = now
        elif now - self._last >= self.every:
            self._last = now
            assert self.checkpointer is not None, "restore() first: it makes the checkpointer"
            self.checkpointer.submit(self.copy())  # a copy now, the JSON on its thread

    def copy(self) -> Callable[[], dict]:
        """This scan's thermal memory, copied (microseconds); the document is built later,
        on the checkpoint thread. The wall clock is read now: the outage is measured from it."""
        state = self.core.thermal_state.copy()
        extra = {"event_seq": self.events.next_seq, "coil_latches": self.latches()}
        wall = time.time()
        names = self.thermal_names
        return lambda: snapshot(names, state, extra, wall)
