"""Settings changed while the relay runs: validated like the configuration, applied between scans.

A change names a point and gives its complete new settings (a validated ``ThermalSettings`` or
``BusbarSettings``: the same checks as the configuration file). The scan applies queued changes
at its start, by rewriting the point's row of the settings table in place, and records each as
a ``settings`` event listing what changed (old -> new). The Modbus slave's settings writes
(issue 5) arrive through this queue.

A change never resets the point's state: theta, latches and filters carry on under the new
settings, as on a relay whose settings group is changed in service.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence

from softrelay.core import BusbarSettings, ProtectionCore, ThermalSettings
from softrelay.core.settings import pack_busbar, pack_thermal


class SettingsQueue:
    def __init__(self, thermal: Sequence[tuple[str, ThermalSettings]],
                 busbar: Sequence[tuple[str, BusbarSettings]],
                 record: Callable[[str, str, str, float], object] | None = None) -> None:
        self.current: dict[str, ThermalSettings | BusbarSettings] = dict(thermal)
        self.current.update(dict(busbar))
        self.rows = {name: ("thermal", i) for i, (name, _) in enumerate(thermal)}
        self.rows.update({name: ("busbar", i) for i, (name, _) in enumerate(busbar)})
        self.record = record
        self.applied = 0  #: changes applied so far (readers of the settings table watch it)
        self._pending: collections.deque[tuple[str, ThermalSettings | BusbarSettings, str]] = (
            collections.deque())
        self._lock = threading.Lock()

    def put(self, point: str, settings: ThermalSettings | BusbarSettings,
            source: str = "local") -> None:
        """Queue a change; refused at once (ValueError or pydantic's ValidationError, which
        names the setting) for an unknown point, the wrong kind or an invalid value."""
        if point not in self.rows:
            raise ValueError(f"no point named {point!r}")
        kind = self.rows[point][0]
        wanted = ThermalSettings if kind == "thermal" else BusbarSettings
        if not isinstance(settings, wanted):
            raise ValueError(f"{point} is a {kind} point: its settings are {wanted.__name__}")
        # Validated again: a model built with model_copy(update=...) was never checked.
        settings = wanted.model_validate(settings.model_dump())
        with self._lock:
            self._pending.append((point, settings, source))

    def apply(self, core: ProtectionCore, now: float) -> None:
        """Scan stage before the core: write each queued change into its row."""
        with self._lock:
            changes = list(self._pending)
            self._pending.clear()
        for point, settings, source in changes:
            _, row = self.rows[point]
            old = self.current[point]
            if isinstance(settings, ThermalSettings):  # put() held it to the point's kind
                core.thermal_settings[row] = pack_thermal([settings])[0]
            else:
                core.busbar_settings[row] = pack_busbar([settings])[0]
            self.current[point] = settings
            self.applied += 1
            before, after = old.model_dump(), settings.model_dump()
            diff = [f"{k} {before[k]} -> {after[k]}" for k in after if after[k] != before[k]]
            if self.record is not None:
                self.record("settings", point, f"from {source}: " + (", ".join(diff)
                                                                      or "no change"), now)
