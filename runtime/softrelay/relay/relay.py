"""The relay's life: ``start()``, ``run()`` (or ``loop.step()`` in tests), ``stop()``.

What it is made of is wired in ``relay.build`` (``build_relay``); its helper processes are
``relay.children``'s; its stages are ``relay.inputs``, ``relay.settings``, ``relay.commands``,
``relay.memory`` and the parts they drive.

The scan process (this one) holds the compiled core, the scan loop and what the scan drives:
coils, commands, events, thermal memory, the output snapshot. Python I/O and the terminal run
in the companion process (``softrelay.field.companion``); the two exchange the input image and
the output snapshot through shared memory under seqlocks.

Data flow, one way: companion -> input image -> the scan -> snapshot -> companion (plant,
status), the Modbus slave and the telemetry. The scan's order is ``relay.stages.SCAN_ORDER``:
latch -> settings -> commands -> core -> settle -> events -> supervision -> coils ->
checkpoint -> keep_settings -> publish (a test holds this to the tuple).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from softrelay.config.relay import RelayConfig
from softrelay.config.state import state_paths
from softrelay.core import (
    ProtectionCore,
    ThermalFlag,
)
from softrelay.image.shared import InstanceLock, segment_prefix
from softrelay.relay.build import assemble
from softrelay.relay.errors import StartupError
from softrelay.scan import realtime
from softrelay.service.notify import status_line

if TYPE_CHECKING:
    from softrelay.config.state import StatePaths
    from softrelay.gpio.buttons import CommandButtons
    from softrelay.gpio.coils import CoilBank, GpioChoice
    from softrelay.gpio.local_remote import LocalRemoteSwitch
    from softrelay.image.shared import SharedImage
    from softrelay.image.signals import InputMap
    from softrelay.image.snapshot import SnapshotPublisher
    from softrelay.modbus.authority import Authority
    from softrelay.modbus.event_window import EventWindow
    from softrelay.modbus.regmap import RegisterMap
    from softrelay.modbus.rtu_slave import RtuSlave
    from softrelay.modbus.tcp_slave import SlaveService
    from softrelay.records.events import EventRecorder, FlagWatcher
    from softrelay.records.thermal_memory import Checkpointer
    from softrelay.relay.children import Helpers
    from softrelay.relay.commands import CommandQueue
    from softrelay.relay.inputs import InputLatch, LostMeasurements
    from softrelay.relay.memory import ThermalMemory
    from softrelay.relay.settings import SettingsService
    from softrelay.scan.clock import ScanClock
    from softrelay.scan.loop import ScanLoop
    from softrelay.service.notify import Notifier
    from softrelay.supervision.health import Supervision
    from softrelay.supervision.links import LinkWatcher
    from softrelay.supervision.watchdog import Watchdog
    from softrelay.telemetry.feed import EventFeed

log = logging.getLogger("softrelay")


class Relay:
    """One relay. ``start()``, then ``run()`` (or ``step()`` in tests), then ``stop()``."""

    # What the relay is made of, set by ``relay.build.assemble`` in the order data flows.
    # the configuration and where its state lives
    config: RelayConfig  # the validated configuration the relay runs
    config_path: str | None  # where ``config`` was read from (messages only)
    paths: StatePaths  # the state directory's files (thermal memory, events)
    instance: InstanceLock  # one instance per relay name and state file
    status: bool  # the terminal status view is on (the helpers keep quiet on stderr)
    thermal_names: list[str]  # the thermal points' names, in core order
    busbar_names: list[str]  # the busbar points' names, in core order
    # the protection and its memory
    settings: SettingsService  # settings in service: the queue, the store, the keeper
    maps: dict[str, RegisterMap]  # the register maps by snapshot prefix (whole map, units)
    regmap: RegisterMap  # the whole map (``maps[IMAGE_PREFIX]``)
    core: ProtectionCore  # the compiled protection: one pass per scan
    clock: ScanClock  # the scan's deadlines (CLOCK_MONOTONIC, or a test's)
    events: EventRecorder  # the event ring and its file
    feed: EventFeed | None  # events to the telemetry process (None: no telemetry)
    memory: ThermalMemory  # thermal memory and latches, restored at start
    checkpointer: Checkpointer  # writes the thermal memory atomically, off the scan
    # the shared images and the helper processes
    inputs: SharedImage  # the input image (the companion writes, the scan latches)
    snapshot: SharedImage  # the output snapshot (the scan publishes, everyone reads)
    input_map: InputMap  # signals of the input image -> the core's inputs
    helpers: Helpers  # the companion and telemetry processes, spawned and supervised
    # the contacts and commands
    gpio: GpioChoice  # which pin factory drives the coils, and why
    factory: object  # that pin factory (gpiozero's Factory)
    coils: CoilBank  # the relay's output contacts, the healthy contact among them
    commands: CommandQueue  # reset / acknowledge commands, applied at the next scan
    buttons: CommandButtons  # command inputs wired to GPIO
    # self-supervision
    systemd: Notifier  # sd_notify: READY, STATUS, WATCHDOG, STOPPING
    supervision: Supervision  # what drops the healthy contact
    watchdog: Watchdog  # the scan-stall watchdog thread
    links: LinkWatcher  # each field bus's link up / down
    latch: InputLatch  # the scan's stage that latches the input image
    lost: LostMeasurements  # the scan's stage that declares measurement lost
    watchers: list[tuple[FlagWatcher, Callable[[ProtectionCore], np.ndarray]]]  # flag edges
    # the Modbus slave and its authority
    event_window: EventWindow  # the events readable over Modbus
    slave: SlaveService | None  # the Modbus/TCP slave (None: not configured)
    rtu: RtuSlave | None  # the Modbus RTU slave (None: not configured)
    authority: Authority | None  # access levels of the Modbus sessions (None: no slave)
    local_remote: LocalRemoteSwitch | None  # the local/remote switch (None: not wired)
    # the scan
    publisher: SnapshotPublisher  # the scan's last stage: the output snapshot
    loop: ScanLoop  # the scan loop over the stages of ``relay.stages.SCAN_ORDER``
    running: bool  # started and not yet stopped
    _given_back: bool  # what was taken has been given back (stop or failed start)

    def __init__(self, config: RelayConfig, config_path: str | None = None, *,
                 clock: ScanClock | None = None, factory: object | None = None,
                 status: bool = False) -> None:
        self.config = config
        #: where ``config`` was read from, if anywhere; the helper processes are given
        #: ``config`` itself (as JSON, validated again there), never this path: a file edited
        #: since, or no file at all, cannot give them another configuration than the scan's
        self.config_path = config_path
        # first, before anything touches the state: one instance per relay (name and state
        # file), else RelayRunningError; its segments are named after it, so a start after kill -9
        # reclaims what the killed instance left
        self.paths = state_paths(config)  #: absolute: the state directory's, not the cwd's
        prefix = segment_prefix(config.name, self.paths.memory)
        self.instance = InstanceLock(prefix, config.name, f", with the state file "
                                     f"{self.paths.memory}")
        try:  # from here on, a failure gives back whatever was taken (nothing leaks)
            assemble(self, config, prefix, clock, factory, status)
        except BaseException:
            self._undo_assembly()
            raise

    def _undo_assembly(self) -> None:
        """A relay that failed while being assembled gives back what it took: its threads,
        pins, port, line, shared memory and instance lock (in the reverse order). Safe to
        call twice."""
        if getattr(self, "_given_back", False):
            return
        self._given_back = True
        for name in ("slave", "rtu"):
            part = getattr(self, name, None)
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        for name in ("buttons", "local_remote", "coils", "settings", "checkpointer", "events"):
            part = getattr(self, name, None)
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        for name in ("inputs", "snapshot"):
            part = getattr(self, name, None)
            if part is not None:
                part.close()
        self.instance.release()

    def describe(self) -> str:
        """One line on how the relay runs (systemd's STATUS: ``service.notify.status_line``)."""
        flags = self.core.thermal_outputs["flags"]
        trips = [n for n, f in zip(self.thermal_names, flags, strict=True)
                 if f & ThermalFlag.TRIP]
        return status_line(self.supervision.healthy, self.loop.stats, trips,
                           self.slave.server.connections if self.slave is not None else None)

    def _access_figures(self) -> dict[str, int]:
        """The access levels' figures for the map and the metrics (``ACCESS_FIGURES``);
        given to the publisher only when the relay has an authority (a Modbus slave)."""
        authority = self.authority
        assert authority is not None, "access figures without a Modbus slave"
        c = authority.counters
        return {"wrong_codes": c.wrong_codes, "lockouts": c.lockouts,
                "refused_writes": c.refused_writes, "sessions": authority.sessions,
                "local": int(authority.is_local())}

    def _modbus_counters(self) -> dict[str, int]:
        """The Modbus/TCP slave's counters; given to the publisher only when there is one."""
        assert self.slave is not None, "Modbus counters without a Modbus/TCP slave"
        return self.slave.counters()

    # ---------------------------------------------------------------- stages

    def _record_edges(self, core: ProtectionCore, now: float) -> None:
        for watcher, flags in self.watchers:
            watcher.update(flags(core), now)

    def _coil_changed(self, name: str, operated: bool, now: float) -> None:
        self.events.record("pickup" if operated else "dropout", f"coil.{name}", mono=now)

    def _set_healthy(self, healthy: bool, why: str) -> None:
        self.coils.set_healthy(healthy)
        text = ("healthy: " if healthy else "NOT healthy: ") + why
        self.events.record("system", "healthy", text)
        self.systemd.status(text)

    # ---------------------------------------------------------------- life

    def start(self, companion: bool = True) -> None:
        """Restore coil latches, start the companion and the watchdog. The helper processes
        are started from this thread, which must live until ``stop()`` (each dies with the
        thread that started it: ``softrelay.scan.lifeline``)."""
        try:
            self._start(companion)
        except BaseException:
            self._abort_start()
            raise

    def _start(self, companion: bool) -> None:
        if self.feed is not None:  # first: a port it cannot bind stops the start here
            self.helpers.start_telemetry()
        restored = self.memory.restored
        assert restored is not None, "assemble() restores the thermal memory"
        latches = restored.extra.get("coil_latches", {})
        for coil in self.coils.coils:
            coil.latched = bool(latches.get(coil.name, False)) and coil.config.latched
        if companion:
            self.helpers.start_companion()
        self.watchdog.start()
        if self.rtu is not None:
            self.rtu.start()
        if self.slave is not None:
            try:
                self.slave.start()
            except RuntimeError as exc:  # the TLS front could not serve: its reason
                raise StartupError(str(exc)) from None
            tls = self.slave.tls_port
            m = self.slave.config
            self.events.record("system", "modbus", f"slave on {m.host}:"
                               + (f"{self.slave.port}" if m.port is not None
                                  else "(no plain port)")
                               + (f", Modbus/TCP Security (TLS) on port {tls}" if tls else ""))
        self.helpers.supervise()
        gc.collect()
        gc.freeze()  # start-up objects to the permanent generation: shorter collections
        self.clock.restart()
        self.running = True
        self.systemd.ready(f"scanning every {self.config.scan.period * 1000:g} ms")
        self.events.record("system", "relay", f"started: {len(self.core.thermal_settings)} "
                                              f"thermal, {len(self.core.busbar_settings)} busbar "
                                              f"points, scan {self.config.scan.period * 1000:g} ms")

    def _abort_start(self) -> None:
        """A start that failed half-way: the helpers started are stopped (killed when they do
        not stop), the coils dropped, and everything else given back as by ``stop()``; no
        checkpoint is written (the relay never ran)."""
        self.helpers.abort()
        self.watchdog.stop()
        self.coils.safe_state()
        self.checkpointer.close()
        self.settings.close()
        self._stop_slaves()
        if self.feed is not None:
            self.feed.close()
        self._give_back_io()
        self._given_back = True

    def apply_realtime(self) -> list[realtime.Applied]:
        rt = self.config.scan.realtime
        results = realtime.apply(rt.priority, rt.lock_memory, rt.cpu, rt.timer_slack_ns)
        for item in results:
            if not item.ok:
                self.events.record("system", "realtime", f"{item.option} refused: {item.detail}")
        return results

    @property
    def telemetry_ports(self) -> dict[str, int]:
        """What the telemetry process serves on, e.g. {"metrics": 9650} (once started)."""
        return self.helpers.ports

    def run(self, keep_going) -> None:
        self.loop.run(keep_going)

    def stop(self) -> None:
        """Last checkpoint, coils to their safe state, companion stopped; safe to call twice.
        A relay never started gives back what it took: its port, pins, threads, shared memory
        and instance lock."""
        if not self.running:
            self._undo_assembly()
            return
        self.running = False
        self.helpers.quiesce()  # first: the helpers' ends below are no failures
        self.systemd.stopping()
        self.watchdog.stop()
        self.coils.safe_state()
        self.events.record("system", "relay", "stopped: checkpoint written, coils safe")
        self.checkpointer.submit(self.memory.copy())  # after the last event: numbers never repeat
        self.checkpointer.close()
        self.settings.close()
        self._stop_slaves()
        if self.feed is not None:  # the last events to the telemetry, then its end of feed
            self.events.flush(2.0)
            self.feed.close()
        self.helpers.stop()
        self._give_back_io()

    def _stop_slaves(self) -> None:
        """The Modbus ports closed: no DCS reads or writes from here on."""
        if self.slave is not None:
            self.slave.stop()
        if self.rtu is not None:
            self.rtu.stop()

    def _give_back_io(self) -> None:
        """The last of a started relay's stop (or failed start): its pins (command inputs, the
        local/remote switch, coils), event file, notify socket and shared memory."""
        self.buttons.close()
        if self.local_remote is not None:
            self.local_remote.close()
        self.coils.close()
        self.events.close()
        self.systemd.close()
        self._release_shared()

    def _release_shared(self) -> None:
        """The shared images removed, then the instance lock dropped (another instance may
        start from here). Safe to call twice."""
        self.inputs.close()
        self.snapshot.close()
        self.instance.release()

