"""Self-supervision: the one place that decides whether the relay is healthy, and says why.

A relay's healthy contact means "I can protect". It drops on causes of two sorts:
- always: a scan stall (``scan_stall``, from the watchdog) and a failed self-test
  (``self_test``: the event writer, the thermal memory, the settings keeper, the I/O process);
- by the configuration's declared policy (``healthy: {drop_on: [...]}``):
  ``measurement_lost`` (any protected point blind for longer than its input_loss_delay: a
  relay's "measuring circuit failure"; on by default), ``link_down`` (any field bus's link),
  ``telemetry_down`` (the telemetry process is not running).

Every cause is tracked whether or not the policy drops the contact for it, so the DCS reads
why the relay is not healthy, and what else is wrong, from one word (``CAUSES`` bit k set
while cause k is active). A change of the contact is reported through ``on_change(healthy,
why)`` (the runtime drives the coil, records the event, tells systemd).

Contract: ``set`` is safe from any thread and cheap when nothing changes; the scan's stage
calls it only on a change; nothing here blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from softrelay.config.health import ALWAYS, CAUSES, OPTIONAL

WORDS = {"scan_stall": "scan stalled", "self_test": "self-test failed",
         "measurement_lost": "measurement lost", "link_down": "link down",
         "telemetry_down": "telemetry down"}

#: (cause, what, the trouble now or None): a condition polled by ``poll``
Check = tuple[str, str, Callable[[], str | None]]


def causes_of(word: int) -> list[str]:
    """The causes a supervision word (``Supervision.word``) has set, in CAUSES order."""
    return [cause for k, cause in enumerate(CAUSES) if word & (1 << k)]


class Supervision:
    """The active causes, the policy, and the healthy state that follows from them."""

    def __init__(self, drop_on: Iterable[str], on_change: Callable[[bool, str], None],
                 checks: Iterable[Check] = ()) -> None:
        unknown = set(drop_on) - set(OPTIONAL)
        if unknown:
            raise ValueError(f"healthy.drop_on: unknown cause(s) {sorted(unknown)}")
        self.drops = ALWAYS | set(drop_on)
        self.on_change = on_change
        self.checks = list(checks)
        #: cause -> why, while active; the scan has not run yet at the start
        self.active: dict[str, str] = {"scan_stall": "not scanning yet"}
        self.healthy = False
        self._lock = threading.Lock()

    @property
    def word(self) -> int:
        """Bit k set while CAUSES[k] is active (whether the policy drops for it or not)."""
        return sum(1 << k for k, cause in enumerate(CAUSES) if cause in self.active)

    def why(self) -> str:
        """The causes that hold the contact down (empty when healthy)."""
        return "; ".join(f"{WORDS[c]}: {self.active[c]}" for c in CAUSES
                         if c in self.active and c in self.drops)

    def set(self, cause: str, active: bool, why: str = "") -> None:
        """Cause ``cause`` is (still) active with ``why``, or has cleared (``why``: what the
        event says of it then; default '<cause> cleared')."""
        with self._lock:
            if active:
                if self.active.get(cause) == why:
                    return
                self.active[cause] = why
            elif self.active.pop(cause, None) is None:
                return
            healthy = not any(c in self.drops for c in self.active)
            counts = cause in self.drops
            flipped, self.healthy = healthy != self.healthy, healthy
            text = self.why() if not healthy else (why or f"{WORDS[cause]} cleared")
        if flipped or (counts and not healthy):
            self.on_change(healthy, text)

    def poll(self) -> None:
        """Ask every polled check for its trouble (the watchdog's thread, several times a
        second); each cause is active while any of its checks reports one."""
        troubles: dict[str, list[str]] = {cause: [] for cause, _, _ in self.checks}
        for cause, what, trouble in self.checks:
            try:
                found = trouble()
            except Exception as exc:  # a broken check is a failed one
                found = f"check raised {exc!r}"
            if found:
                troubles[cause].append(f"{what}: {found}")
        for cause, causes in troubles.items():
            self.set(cause, bool(causes), "; ".join(causes))
