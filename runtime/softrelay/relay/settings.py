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
        self.queue: SettingsQueue | None = None  #: None until ``open``
        self.keeper: Checkpointer | None = None  #: None until ``open``
        self._kept = 0

    def open(self, record: Callable[..., object]) -> None:
        """The queue and the keeper, their events to ``record``; what the kept file said is
        recorded now, and what is kept is written again under this configuration's hash."""
        thermal = [p.name for p in self.config.thermal_points]
        busbar = [p.name for p in self.config.busbar_points]
        self.queue = SettingsQueue(list(zip(thermal, self.thermal_start, strict=True)),
                                   list(zip(busbar, self.busbar_start, strict=True)), record)
        for message in self._messages:
            record("system", "settings", message)
        self.keeper = Checkpointer(
            self.file, on_error=lambda why: record("fault", "settings", why),
            on_clear=lambda why: record("system", "settings", why))
        self._kept = self.queue.applied
        if self.file.exists():  # what is kept now, under this configuration's hash
            self._submit()

    @property
    def thermal_start(self) -> list[ThermalSettings]:
        """The settings the thermal points start on, in the core's row order."""
        return [_thermal(self.start_with[p.name]) for p in self.config.thermal_points]

    @property
    def busbar_start(self) -> list[BusbarSettings]:
        """The settings the busbar points start on, in the core's row order."""
        return [_busbar(self.start_with[p.name]) for p in self.config.busbar_points]

    def _opened(self) -> tuple[SettingsQueue, Checkpointer]:
        """The queue and the keeper (``open`` makes them; nothing uses them before)."""
        assert self.queue is not None and self.keeper is not None, "SettingsService.open() first"
        return self.queue, self.keeper

    # ---------------------------------------------------------------- a writer's interface

    @property
    def current(self) -> Mapping[str, ThermalSettings | BusbarSettings]:
        """What each point runs on now (changes applied by the scan included)."""
        return self._opened()[0].current

    def put(self, point: str, settings: ThermalSettings | BusbarSettings,
            source: str = "local") -> None:
        """Queue a change for the next scan (``SettingsQueue.put``: refused at once when it
        does not validate)."""
        self._opened()[0].put(point, settings, source)

    @property
    def applied(self) -> int:
        """Changes applied so far (readers of the settings table watch it)."""
        return self._opened()[0].applied

    @property
    def trouble(self) -> str | None:
        """Why the kept settings cannot be written, None while they can (a self-test)."""
        return self.keeper.trouble if self.keeper is not None else None

    # ---------------------------------------------------------------- the scan's stages

    def apply(self, core: ProtectionCore, now: float) -> None:
        """The ``settings`` stage: queued changes into the core's settings table."""
        self._opened()[0].apply(core, now)

    def keep(self, core: ProtectionCore, now: float) -> None:
        """The ``keep_settings`` stage: after a change, the changed points' settings to the
        keeper (written on its thread)."""
        queue = self._opened()[0]
        if queue.applied != self._kept:
            self._kept = queue.applied
            self._submit()

    def _submit(self) -> None:
        """The points whose settings differ from the file's, written on the keeper's thread."""
        queue, keeper = self._opened()
        changed = changed_points(queue.current, self.configured)
        keeper.submit(lambda: settings_document(changed, self.config))

    def close(self) -> None:
        """The keeper's last write finished; safe to call twice, and before ``open``."""
        if self.keeper is not None:
            self.keeper.close()


def _thermal(settings: ThermalSettings | BusbarSettings) -> ThermalSettings:
    """A thermal point's settings (its configuration says so: a ``ThermalPoint``)."""
    assert isinstance(settings, ThermalSettings), f"thermal settings expected: {settings!r}"
    return settings


def _busbar(settings: ThermalSettings | BusbarSettings) -> BusbarSettings:
    """A busbar point's settings (its configuration says so: a ``BusbarPoint``)."""
    assert isinstance(settings, BusbarSettings), f"busbar settings expected: {settings!r}"
    return settings
