"""One relay's settings, as one service: what each point runs on, the queue changes made in
service wait in, and the keeper that writes the changed ones to disk.

- at start (``SettingsService(config, memory_path)``): the configuration's settings, and over
  them the ones changed in service and kept (``records.kept_settings``), while they were made
  over this very configuration; what the kept file said is recorded once the recorder exists
  (``open``);
- in service: a change (``put``, from the Modbus slave, validated like the configuration) waits
  in the queue (``relay.settings_changes.SettingsQueue``) and the scan applies it at its start
  (the ``settings`` stage); after it, the ``keep_settings`` stage hands the points whose
  settings differ from the file's to the keeper, which writes them on its own thread (a disk
  that refuses is the self-test "kept settings", with the reason).

Never blocks the scan: the scan only swaps rows of the settings table and submits a document
builder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from softrelay.config.relay import RelayConfig
from softrelay.core import BusbarSettings, ProtectionCore, ThermalSettings
from softrelay.records.kept_settings import changed_points, settings_path
from softrelay.records.kept_settings import document as settings_document
from softrelay.records.kept_settings import load as load_kept_settings
from softrelay.records.thermal_memory import Checkpointer
from softrelay.relay.settings_changes import SettingsQueue


class SettingsService:
    """The settings of ``config``'s points (``start_with``), then ``open(record)`` for the
    queue and the keeper; ``current`` and ``put`` are what a settings writer is handed
    (``core.commands.SettingsChanges``)."""

    def __init__(self, config: RelayConfig, memory_path: Path) -> None:
        self.config = config
        self.configured = {p.name: p.settings for p in config.points}  #: the file's
        self.file = settings_path(memory_path)
        kept, self._messages = load_kept_settings(self.file, self.configured, config)
        #: point -> the settings it starts on (the file's, over them the kept ones)
        self.start_with: dict[str, ThermalSettings | BusbarSettings] = self.configured | kept
        self.queue: SettingsQueue | None = None
        self.keeper: Checkpointer | None = None
        self._kept = 0

    def open(self, record: Callable[..., object]) -> None:
        """The queue and the keeper, their events to ``record``; what the kept file said is
        recorded now, and what is kept is written again under this configuration's hash."""
        start = self.start_with
        self.queue = SettingsQueue([(p.name, start[p.name]) for p in self.config.thermal_points],
                                   [(p.name, start[p.name]) for p in self.config.busbar_points],
                                   record)
        for message in self._messages:
            record("system", "settings", message)
        self.keeper = Checkpointer(
            self.file, on_error=lambda why: record("fault", "settings", why),
            on_clear=lambda why: record("system", "settings", why))
        self._kept = self.queue.applied
        if self.file.exists():  # what is kept now, under this configuration's hash
            self._submit()

    # ---------------------------------------------------------------- a writer's interface

    @property
    def current(self) -> Mapping[str, ThermalSettings | BusbarSettings]:
        """What each point runs on now (changes applied by the scan included)."""
        return self.queue.current

    def put(self, point: str, settings: ThermalSettings | BusbarSettings,
            source: str = "local") -> None:
        """Queue a change for the next scan (``SettingsQueue.put``: refused at once when it
        does not validate)."""
        self.queue.put(point, settings, source)

    @property
    def applied(self) -> int:
        """Changes applied so far (readers of the settings table watch it)."""
        return self.queue.applied

    @property
    def trouble(self) -> str | None:
        """Why the kept settings cannot be written, None while they can (a self-test)."""
        return self.keeper.trouble if self.keeper is not None else None

    # ---------------------------------------------------------------- the scan's stages

    def apply(self, core: ProtectionCore, now: float) -> None:
        """The ``settings`` stage: queued changes into the core's settings table."""
        self.queue.apply(core, now)

    def keep(self, core: ProtectionCore, now: float) -> None:
        """The ``keep_settings`` stage: after a change, the changed points' settings to the
        keeper (written on its thread)."""
        if self.queue.applied != self._kept:
            self._kept = self.queue.applied
            self._submit()

    def _submit(self) -> None:
        """The points whose settings differ from the file's, written on the keeper's thread."""
        changed = changed_points(self.queue.current, self.configured)
        self.keeper.submit(lambda: settings_document(changed, self.config))

    def close(self) -> None:
        """The keeper's last write finished; safe to call twice, and before ``open``."""
        if self.keeper is not None:
            self.keeper.close()
