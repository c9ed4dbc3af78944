"""The relay: everything ``softrelay run`` starts, assembled from one configuration.

The scan process (this one) holds the compiled core, the scan loop and what the scan drives:
coils, commands, events, thermal memory, the output snapshot. Python I/O and the terminal run
in the companion process (``softrelay.field.companion``); the two exchange the input image and
the output snapshot through shared memory under seqlocks.

Data flow, one way: companion -> input image -> latch -> commands -> core -> coils -> events ->
thermal memory -> snapshot -> companion (plant, status) and, later, communications.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable

import numpy as np

from softrelay import _shm
from softrelay.config.schema import RelayConfig, state_paths
from softrelay.core import (
    CHANNEL_NAMES,
    BusbarFlag,
    ChannelFault,
    ProtectionCore,
    ThermalFlag,
    flag_bits,
)
from softrelay.field.companion import companion_main
from softrelay.field.open_faults import open_fault
from softrelay.gpio.buttons import CommandButtons
from softrelay.gpio.coils import (
    CoilBank,
    GpioChoice,
    GpioError,
    MockFactory,
    choose_pin_factory,
)
from softrelay.gpio.local_remote import LocalRemoteSwitch
from softrelay.image.shared import InstanceLock, SharedImage, segment_prefix
from softrelay.image.signals import InputMap, empty_signals, input_layout
from softrelay.image.snapshot import SnapshotPublisher, snapshot_layout
from softrelay.modbus.authority import Authority, LockoutPolicy
from softrelay.modbus.event_window import EventWindow
from softrelay.modbus.pdu import SlaveLogic
from softrelay.modbus.register_image import (
    IMAGE_PREFIX,
    RegisterPublisher,
    register_layout,
    register_maps,
)
from softrelay.modbus.rtu_slave import RtuSlave
from softrelay.modbus.tcp_slave import SlaveService, TlsPortError
from softrelay.modbus.writes import RelayWrites
from softrelay.records.events import EventRecorder, FlagWatcher, last_seq
from softrelay.records.kept_settings import changed_points, settings_path
from softrelay.records.kept_settings import document as settings_document
from softrelay.records.kept_settings import load as load_kept_settings
from softrelay.records.thermal_memory import Checkpointer, restore, snapshot
from softrelay.relay.commands import CommandQueue
from softrelay.relay.settings_changes import SettingsQueue
from softrelay.scan import realtime
from softrelay.scan.clock import MonotonicClock
from softrelay.scan.loop import ScanLoop, ScanStats
from softrelay.service.notify import Notifier
from softrelay.supervision.health import Supervision
from softrelay.supervision.links import LinkWatcher
from softrelay.supervision.watchdog import Watchdog
from softrelay.telemetry.feed import EventFeed, feed_pair
from softrelay.telemetry.process import telemetry_main

log = logging.getLogger("softrelay")

THERMAL_EVENT_FLAGS = {bit: name for name, bit in flag_bits(ThermalFlag)
                       if bit not in (ThermalFlag.TRIP_PICKUP, ThermalFlag.RESET_REJECTED)}
BUSBAR_EVENT_FLAGS = {bit: name for name, bit in flag_bits(BusbarFlag)}
#: s start() waits for the I/O and telemetry processes to say they are ready (under
#: qemu-user a helper's imports alone can take longer: tools/arm/qemu_profile.py)
HELPER_READY_S = 30.0
FAULT_BITS = {bit: name for name, bit in flag_bits(ChannelFault)}


class StartupError(RuntimeError):
    """The relay cannot take one of its own resources: its Modbus slave's port, its RTU line,
    its metrics port, the pin factory it was told to use, a helper process. Fatal: the text is
    the one line the user reads (what and why); nothing the relay took is left behind."""


def port_error(what: str, key: str, host: str, port: int, exc: OSError) -> str:
    """One line on a port the relay cannot listen on (``key``: the setting that names it)."""
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} in use: {what} cannot listen on {host}:{port} (another relay or "
                f"program holds it: ss -ltnp 'sport = :{port}'; or set {key})")
    if isinstance(exc, PermissionError):
        return f"{what}: {exc}"
    return f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}"


class Relay:
    """One relay. ``start()``, then ``run()`` (or ``step()`` in tests), then ``stop()``."""

    def __init__(self, config: RelayConfig, config_path: str | None = None, *, clock=None,
                 factory=None, status: bool = False) -> None:
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
            self._assemble(config, prefix, clock, factory, status)
        except BaseException:
            self._undo_assembly()
            raise

    def _assemble(self, config: RelayConfig, prefix: str, clock, factory,
                  status: bool) -> None:
        """Everything the relay is made of, in the order data flows; the relay's own ports
        (Modbus slave, RTU line) are taken here: one it cannot take is a ``StartupError``."""
        self.status = status
        thermal = list(config.thermal_points)
        busbar = list(config.busbar_points)
        self.thermal_names = [p.name for p in thermal]
        self.busbar_names = [p.name for p in busbar]
        # settings changed in service (over Modbus) and kept: over the file's, while it is
        # the file they were made over
        self.configured = {p.name: p.settings for p in config.points}
        self.settings_file = settings_path(self.paths.memory)
        self.maps = register_maps(config)  #: by snapshot prefix: the whole map, unit groups
        self.regmap = self.maps[IMAGE_PREFIX]
        self._config_hash = self.regmap.config_hash
        kept, self._settings_messages = load_kept_settings(
            self.settings_file, self.configured, config)
        settings_of = self.configured | kept
        sampled = any(p.samples for p in thermal)
        self.core = ProtectionCore([settings_of[p.name] for p in thermal],
                                   [settings_of[p.name] for p in busbar],
                                   window_length=config.sampling.window_length if sampled else 0,
                                   samples_per_cycle=config.sampling.samples_per_cycle)
        period_ns = round(config.scan.period * 1e9)
        self.clock = clock or MonotonicClock(period_ns)

        ev = config.events
        first_seq = last_seq(self.paths.events) + 1 if self.paths.events else 1
        self.events = EventRecorder(ev.ring_size, self.paths.events, first_seq,
                                    max_bytes=ev.max_bytes, keep=ev.keep)
        self.feed: EventFeed | None = None  # to the telemetry: from the first event on
        self._feed_receiver = None
        if config.metrics is not None or config.mqtt is not None or config.snmp is not None:
            sender, self._feed_receiver = feed_pair()
            self.feed = EventFeed(sender)
            self.events.listeners.append(self.feed.send)
        self._restore_memory()
        self.checkpointer = Checkpointer(
            self.paths.memory, on_error=lambda why: self.events.record("fault", "memory", why),
            on_clear=lambda why: self.events.record("system", "memory", why))
        self._checkpoint_every = config.state.checkpoint_interval
        self._last_checkpoint = None

        if self.instance.previous is not None:
            self.events.record("system", "relay", f"the previous instance (pid "
                               f"{self.instance.previous}) did not stop cleanly: its shared "
                               "memory reclaimed")
        self.inputs = SharedImage(input_layout(config), name=f"{prefix}-inputs")
        #: the latch's give-up: half a period (seqlock.h's 100 ms at the most)
        self._latch_give_up_ms = min(_shm.GIVE_UP_MS, config.scan.period * 500.0)
        self._latches_missed = 0  #: scans in a row that kept the inputs they had
        with self.inputs.writing() as t:
            t["signals"][:] = empty_signals(len(config.signals))
        self.snapshot = SharedImage(snapshot_layout(config, register_layout(self.maps)),
                                    name=f"{prefix}-snapshot")
        self.input_map = InputMap(config)

        index = {p.name: ("thermal", i, p) for i, p in enumerate(thermal)}
        index.update({p.name: ("busbar", i, p) for i, p in enumerate(busbar)})
        if factory is not None:  # the caller's (tests): it wins over gpio.factory
            self.gpio = GpioChoice(factory, "given", f"{type(factory).__name__} given by the "
                                   "caller", simulated=isinstance(factory, MockFactory))
        else:
            try:
                self.gpio = choose_pin_factory(config.gpio.factory)
            except GpioError as exc:
                raise StartupError(str(exc)) from None
        self.factory = self.gpio.factory
        if self.gpio.warning:  # auto fell back to mock pins: a relay that operates nothing
            log.warning("gpio: %s", self.gpio.warning)
            self.events.record("system", "gpio", f"warning: {self.gpio.warning}")
        self.events.record("system", "gpio", f"coils driven by {self.gpio.text}")
        self.coils = CoilBank(config.outputs, index, factory=self.factory,
                              on_change=self._coil_changed)
        stats = ScanStats(self.clock.period_ns)
        self.commands = CommandQueue(self.thermal_names, self.coils.release_latches,
                                     self.events.record, clear_statistics=stats.clear)
        self.buttons = CommandButtons(config.inputs, self.commands, factory=self.factory)
        self.settings = SettingsQueue([(p.name, settings_of[p.name]) for p in thermal],
                                      [(p.name, settings_of[p.name]) for p in busbar],
                                      self.events.record)
        for message in self._settings_messages:
            self.events.record("system", "settings", message)
        self.settings_keeper = Checkpointer(
            self.settings_file,
            on_error=lambda why: self.events.record("fault", "settings", why),
            on_clear=lambda why: self.events.record("system", "settings", why))
        self._settings_kept = self.settings.applied
        if self.settings_file.exists():  # what is kept now, under this configuration's hash
            self._submit_kept_settings()
        limit = config.scan.watchdog_periods * config.scan.period
        self.systemd = Notifier()
        self.supervision = Supervision(config.healthy.drop_on, self._set_healthy, checks=[
            ("self_test", "event writer", lambda: self.events.trouble),
            ("self_test", "thermal memory", lambda: self.checkpointer.trouble),
            ("self_test", "kept settings", lambda: self.settings_keeper.trouble),
            ("self_test", "I/O process", self._companion_trouble),
            ("telemetry_down", "telemetry process", self._telemetry_trouble)])
        self.watchdog = Watchdog(
            limit, lambda fresh, why: self.supervision.set("scan_stall", not fresh, why),
            feed_systemd=self.systemd.feed, also=self.supervision.poll)
        self.links = LinkWatcher([b.name for b in config.buses], self.events)
        self._lost_thermal = np.zeros(len(thermal), dtype=bool)
        self._lost_busbar = np.zeros(len(busbar), dtype=bool)

        fault_names = [f"{b}.{c}" for b in self.busbar_names for c in CHANNEL_NAMES]
        self.watchers = [
            (FlagWatcher(self.thermal_names, THERMAL_EVENT_FLAGS, self.events),
             lambda core: core.thermal_outputs["flags"]),
            (FlagWatcher(self.busbar_names, BUSBAR_EVENT_FLAGS, self.events),
             lambda core: core.busbar_outputs["flags"]),
            (FlagWatcher(fault_names, FAULT_BITS, self.events, "fault", "fault cleared"),
             lambda core: core.busbar_outputs["fault"].reshape(-1)),
        ]
        self.event_window = EventWindow(self.events, self.regmap.event_sources)
        self.slave: SlaveService | None = None
        self.rtu: RtuSlave | None = None
        self.authority: Authority | None = None
        self.local_remote: LocalRemoteSwitch | None = None
        if config.modbus is not None or config.modbus_rtu is not None:
            access = config.access
            if access.local_remote is not None:
                self.local_remote = LocalRemoteSwitch(access.local_remote, factory=self.factory,
                                                      record=self.events.record)
            self.authority = Authority(
                access.codes(), access.minutes, access.levels.model_dump(),
                LockoutPolicy(**access.lockout.model_dump()), record=self.events.record,
                local=self.local_remote.local if self.local_remote is not None else None)
        if config.modbus is not None:
            m = config.modbus
            try:
                self.slave = SlaveService(m, self.maps, self.snapshot, RelayWrites(
                    self.commands, self.settings, self.authority, self.events.record,
                    events=self.event_window), avoid_cpu=config.scan.realtime.cpu,
                    quiet=status, helper_priority=config.scan.realtime.helper_priority)
            except TlsPortError as exc:
                raise StartupError(port_error("the Modbus TLS port", "modbus.tls.port", m.host,
                                              m.tls.port, exc)) from None
            except OSError as exc:
                raise StartupError(port_error("the Modbus slave", "modbus.port", m.host,
                                              m.port, exc)) from None
        if config.modbus_rtu is not None:
            logic = (self.slave.logic[IMAGE_PREFIX] if self.slave is not None
                     else SlaveLogic(self.regmap))  # the TCP side's, when there is one
            try:
                self.rtu = RtuSlave(config.modbus_rtu, logic, self.snapshot,
                                    RelayWrites(self.commands, self.settings, self.authority,
                                                self.events.record, source="modbus-rtu",
                                                events=self.event_window))
            except OSError as exc:  # pyserial's SerialException is one
                raise StartupError(str(open_fault("serial", config.modbus_rtu.port, exc,
                                                  " for the RTU slave"))) from None
        self.publisher = SnapshotPublisher(
            self.snapshot, stats, lambda: list(self.coils.state().values()),
            lambda: self.events.next_seq - 1, lambda: self.supervision.healthy,
            providers=[RegisterPublisher(
                regmap, lambda: self.settings.applied,
                (lambda: self.authority.engineer_held) if self.authority is not None
                else lambda: False,
                self.event_window, prefix, tables={"links": self.links.table})
                for prefix, regmap in self.maps.items()],
            modbus_counters=self._modbus_counters if self.slave is not None else None,
            supervision=self._supervision_figures,
            access=self._access_figures if self.authority is not None else None)
        self.loop = ScanLoop(
            self.core, self.clock,
            before=[self._latch, self.settings.apply, self.commands.apply],
            after=[self.commands.settle, self._record_edges, self._supervise_inputs,
                   self.coils.drive, self._checkpoint,
                   self._keep_settings, self.publisher.publish],
            on_overrun=lambda missed, now: self.events.record(
                "overrun", "scan", f"{missed} period(s) skipped", now),
            heartbeat=self.watchdog.beat,
            stats=stats,
        )
        self.systemd.describe = self.describe
        self._companion: multiprocessing.Process | None = None
        self._telemetry: multiprocessing.Process | None = None
        self._supervisor: threading.Thread | None = None
        self._supervising = threading.Event()  #: set: stop supervising (the relay stops)
        self._supervisor_idle = threading.Event()  #: it no longer starts helpers
        self._helpers_gone = threading.Event()  #: the helpers ended: its thread may end
        #: what the telemetry process serves on, e.g. {"metrics": 9650} (once started)
        self.telemetry_ports: dict[str, int] = {}
        self._stop = multiprocessing.get_context("spawn").Event()
        self.running = False

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
        for name in ("buttons", "coils", "settings_keeper", "checkpointer", "events"):
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
        """One line on how the relay runs (systemd's STATUS): health, scan figures, trips,
        Modbus clients."""
        stats = self.loop.stats
        flags = self.core.thermal_outputs["flags"]
        trips = [n for n, f in zip(self.thermal_names, flags, strict=True)
                 if f & ThermalFlag.TRIP]
        text = (f"{'healthy' if self.supervision.healthy else 'NOT healthy'}; scan "
                f"{stats.period_ns / 1e6:g} ms, {stats.scans} scans, lateness p99 "
                f"{stats.lateness.percentile(99.0) / 1e3:.0f} us, {stats.overruns} overruns; "
                + (f"TRIP {', '.join(trips)}" if trips else "no trip"))
        if self.slave is not None:
            text += f"; modbus {self.slave.server.connections} client(s)"
        return text

    def _access_figures(self) -> dict[str, int]:
        """The access levels' figures for the map and the metrics (``ACCESS_FIGURES``)."""
        authority = self.authority
        c = authority.counters
        return {"wrong_codes": c.wrong_codes, "lockouts": c.lockouts,
                "refused_writes": c.refused_writes, "sessions": authority.sessions,
                "local": int(authority.is_local())}

    def _modbus_counters(self) -> dict[str, int]:
        return self.slave.counters()

    # ---------------------------------------------------------------- stages

    def _latch(self, core: ProtectionCore, now: float) -> None:
        """The input image into the core. A companion that holds the image mid-write for
        longer than half a period (stopped, or starved) costs this scan its new inputs, not
        the scan: the core keeps the inputs it had (their stamps age, so a lasting hold ends
        in measurement lost by the points' own policy), with an event when it begins and when
        the image is latched again."""
        try:
            tables = self.inputs.read(self._latch_give_up_ms)
        except TimeoutError:
            self._latches_missed += 1
            if self._latches_missed == 1:
                text = (f"no whole version within {self._latch_give_up_ms:g} ms (the I/O "
                        "process holds it mid-write): the scan keeps the inputs it had")
                log.warning("input image: %s", text)
                self.events.record("fault", "input image", text, mono=now)
            return
        if self._latches_missed:
            text = f"latched again after {self._latches_missed} scan(s) on the inputs it had"
            log.warning("input image: %s", text)
            self.events.record("fault cleared", "input image", text, mono=now)
            self._latches_missed = 0
        self.input_map.latch(core, tables, now)
        if self.links.update(tables["buses"], now):
            down = self.links.names_down
            self.supervision.set("link_down", bool(down), ", ".join(down))

    def _supervise_inputs(self, core: ProtectionCore, now: float) -> None:
        """Measurement lost on any point: one test per kind per scan; names on a change."""
        thermal = (core.thermal_outputs["flags"] & ThermalFlag.MEASUREMENT_LOST) != 0
        busbar = (core.busbar_outputs["flags"] & BusbarFlag.MEASUREMENT_LOST) != 0
        if np.array_equal(thermal, self._lost_thermal) and \
                np.array_equal(busbar, self._lost_busbar):
            return
        self._lost_thermal[:], self._lost_busbar[:] = thermal, busbar
        lost = ([n for n, x in zip(self.thermal_names, thermal, strict=True) if x]
                + [n for n, x in zip(self.busbar_names, busbar, strict=True) if x])
        self.supervision.set("measurement_lost", bool(lost), ", ".join(lost))

    def _supervision_figures(self) -> tuple[int, int, int]:
        """(self-supervision word, points whose measurement is lost, buses down): what the
        snapshot and the map show."""
        lost = int(self._lost_thermal.sum() + self._lost_busbar.sum())
        return self.supervision.word, lost, int(self.links.down.sum())

    def _companion_trouble(self) -> str | None:
        companion = self._companion
        if companion is not None and not companion.is_alive():
            return f"exited (code {companion.exitcode}): the inputs go stale"
        return None

    def _telemetry_trouble(self) -> str | None:
        telemetry = self._telemetry
        if telemetry is not None and not telemetry.is_alive():
            return f"exited (code {telemetry.exitcode})"
        return None

    def _record_edges(self, core: ProtectionCore, now: float) -> None:
        for watcher, flags in self.watchers:
            watcher.update(flags(core), now)

    def _keep_settings(self, core: ProtectionCore, now: float) -> None:
        """After a settings change: keep the changed points' settings (on the keeper's
        thread)."""
        if self.settings.applied != self._settings_kept:
            self._settings_kept = self.settings.applied
            self._submit_kept_settings()

    def _submit_kept_settings(self) -> None:
        """The points whose settings differ from the file's, written on the keeper's thread."""
        changed = changed_points(self.settings.current, self.configured)
        self.settings_keeper.submit(lambda: settings_document(changed, self.config))

    def _checkpoint(self, core: ProtectionCore, now: float) -> None:
        if self._last_checkpoint is None:
            self._last_checkpoint = now
        elif now - self._last_checkpoint >= self._checkpoint_every:
            self._last_checkpoint = now
            self.checkpointer.submit(self._memory())  # a copy now, the JSON on its thread

    # ---------------------------------------------------------------- firmware

    def _memory(self) -> Callable[[], dict]:
        """This scan's thermal memory, copied (microseconds); the document is built later,
        on the checkpoint thread. The wall clock is read now: the outage is measured from it."""
        state = self.core.thermal_state.copy()
        extra = {"event_seq": self.events.next_seq,
                 "coil_latches": {c.name: c.latched for c in self.coils.coils}}
        wall = time.time()
        return lambda: snapshot(self.thermal_names, state, extra, wall)

    def _restore_memory(self) -> None:
        state = self.config.state
        result = restore(self.paths.memory, self.thermal_names, self.core.thermal_settings,
                         self.core.thermal_state, state.power_loss, state.preset_theta)
        self._restored = result
        if result.extra.get("event_seq"):
            self.events.next_seq = max(self.events.next_seq, int(result.extra["event_seq"]))
        outage = f", outage {result.outage:.0f} s" if result.outage is not None else ""
        self.events.record("system", "memory",
                           f"thermal memory {result.outcome}, power-loss policy "
                           f"{result.policy}{outage}")
        for message in result.messages:
            self.events.record("system", "memory", message)

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
            self._start_telemetry()
        latches = self._restored.extra.get("coil_latches", {})
        for coil in self.coils.coils:
            coil.latched = bool(latches.get(coil.name, False)) and coil.config.latched
        if companion:
            ctx = multiprocessing.get_context("spawn")
            ready = ctx.Event()
            self._companion = ctx.Process(
                target=companion_main, name="softrelay-io",
                args=(self.config.model_dump_json(), self.inputs.name, self.snapshot.name,
                      self._stop, ready, self.status, 0.5, self.config.scan.realtime.cpu,
                      os.getpid(), self.config.scan.realtime.helper_priority),
                daemon=True)
            with realtime.at_normal_priority():  # not the scan's: its own, from the start
                self._companion.start()
            self._wait_ready(self._companion, ready, HELPER_READY_S)
        self.watchdog.start()
        if self.rtu is not None:
            self.rtu.start()
        if self.slave is not None:
            try:
                self.slave.start()
            except RuntimeError as exc:  # the TLS front could not serve: its reason
                raise StartupError(str(exc)) from None
            tls = self.slave.tls_port
            self.events.record("system", "modbus", f"slave on {self.config.modbus.host}:"
                               + (f"{self.slave.port}" if self.config.modbus.port is not None
                                  else "(no plain port)")
                               + (f", Modbus/TCP Security (TLS) on port {tls}" if tls else ""))
        if self._companion is not None or self._telemetry is not None:
            self._supervisor = threading.Thread(target=self._supervise, name="supervisor",
                                                daemon=True)
            self._supervisor.start()
        gc.collect()
        gc.freeze()  # start-up objects to the permanent generation: shorter collections
        self.clock.restart()
        self.running = True
        self.systemd.ready(f"scanning every {self.config.scan.period * 1000:g} ms")
        self.events.record("system", "relay", f"started: {len(self.core.thermal_settings)} "
                                              f"thermal, {len(self.core.busbar_settings)} busbar "
                                              f"points, scan {self.config.scan.period * 1000:g} ms")

    @staticmethod
    def _wait_ready(process, ready, within: float) -> None:
        """Until the I/O process says it is ready; a ``StartupError`` when it exits first
        (its own messages say why) or stays silent."""
        deadline = time.monotonic() + within
        while not ready.wait(0.05):
            if not process.is_alive():
                raise StartupError(f"the I/O process exited (code {process.exitcode}) before "
                                   "it was ready: its messages above say why")
            if time.monotonic() > deadline:
                raise StartupError(f"the I/O process was not ready within {within:g} s")

    def _tell_helpers_to_stop(self) -> None:
        """Set the helpers' stop event, waiting at most 2 s: a helper killed while it waited
        on the event (a signal to the whole process group) leaves ``set()`` waiting for it to
        wake, forever; the helpers that did not see it are killed after their join."""
        setter = threading.Thread(target=self._stop.set, name="stop-helpers", daemon=True)
        setter.start()
        setter.join(2.0)

    def _abort_start(self) -> None:
        """A start that failed half-way: the helpers started are stopped (killed when they do
        not stop), the coils dropped, and everything else given back as by ``stop()``; no
        checkpoint is written (the relay never ran)."""
        self._supervising.set()
        self._tell_helpers_to_stop()
        for child in (self._companion, self._telemetry):
            if child is not None and child.pid is not None:
                child.join(5.0)
                if child.is_alive():
                    child.kill()
                    child.join(5.0)
        self._companion = self._telemetry = None
        self._helpers_gone.set()
        if self._supervisor is not None:
            self._supervisor.join(5.0)
        self.watchdog.stop()
        self.coils.safe_state()
        self.checkpointer.close()
        self.settings_keeper.close()
        if self.slave is not None:
            self.slave.stop()
        if self.rtu is not None:
            self.rtu.stop()
        if self.feed is not None:
            self.feed.close()
        self.buttons.close()
        self.coils.close()
        self.events.close()
        self.systemd.close()
        self._release_shared()
        self._given_back = True

    def _start_telemetry(self) -> None:
        """The telemetry process (metrics, MQTT, SNMP); the relay does not wait on it after
        it started."""
        ctx = multiprocessing.get_context("spawn")
        answer, ready = ctx.Pipe(duplex=False)
        self._telemetry = ctx.Process(
            target=telemetry_main, name="softrelay-telemetry",
            args=(self.config.model_dump_json(), self.snapshot.name, self.inputs.name,
                  self._feed_receiver, self._stop, ready, self.config.scan.realtime.cpu,
                  self.status, os.getpid(), self.config.scan.realtime.helper_priority),
            daemon=True)
        with realtime.at_normal_priority():
            self._telemetry.start()
        ready.close()
        self._feed_receiver.close()  # the child has its own: the feed fails when it dies
        try:
            said = (answer.recv() if answer.poll(HELPER_READY_S)
                    else f"no answer in {HELPER_READY_S:g} s")
        except EOFError:
            said = f"it exited ({self._telemetry.exitcode})"
        finally:
            answer.close()
        if isinstance(said, str):
            said = re.sub(r"^\[Errno \d+\] ", "", said)
            metrics = self.config.metrics
            if metrics is not None and "in use" in said:
                raise StartupError(f"port {metrics.port} in use: {said} (or set metrics.port)")
            raise StartupError(f"the telemetry process did not start: {said}")
        self.telemetry_ports = said

    def _supervise(self) -> None:
        """The helper processes, every second (a thread of its own, at normal priority): a
        companion that exited is recorded once (its inputs go stale and the core flags them);
        a telemetry process that exited is recorded and started again, at most every 10 s,
        and given the events it missed from the recorder's ring.

        A telemetry process started here dies when this thread ends (its death signal follows
        the thread that started it): so on ``stop()`` this thread first stops starting helpers
        (``_supervisor_idle``), then lives on until the helpers have ended."""
        try:
            self._supervise_helpers()
        finally:
            self._supervisor_idle.set()
            self._helpers_gone.wait(60.0)

    def _supervise_helpers(self) -> None:
        realtime.leave_realtime()
        companion_reported = False
        next_restart = 0.0
        while not self._supervising.wait(1.0):
            companion, telemetry = self._companion, self._telemetry
            if companion is not None and not companion.is_alive() and not companion_reported:
                companion_reported = True
                self.events.record("fault", "companion", f"the I/O process exited (code "
                                   f"{companion.exitcode}): its signals go stale")
            if telemetry is not None and not telemetry.is_alive() \
                    and time.monotonic() >= next_restart:
                next_restart = time.monotonic() + 10.0
                self.events.record("fault", "telemetry", f"the telemetry process exited (code "
                                   f"{telemetry.exitcode}): starting it again")
                try:
                    sender, self._feed_receiver = feed_pair()
                    self._start_telemetry()
                    self.feed.attach(sender, self.events.since)
                except Exception as exc:  # tried again in 10 s
                    self.events.record("fault", "telemetry", f"not started again: {exc}")

    def apply_realtime(self) -> list[realtime.Applied]:
        rt = self.config.scan.realtime
        results = realtime.apply(rt.priority, rt.lock_memory, rt.cpu, rt.timer_slack_ns)
        for item in results:
            if not item.ok:
                self.events.record("system", "realtime", f"{item.option} refused: {item.detail}")
        return results

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
        self._supervising.set()  # first: the helpers' ends below are no failures
        if self._supervisor is not None:
            self._supervisor_idle.wait(35.0)
        self.systemd.stopping()
        self.watchdog.stop()
        self.coils.safe_state()
        self.events.record("system", "relay", "stopped: checkpoint written, coils safe")
        self.checkpointer.submit(self._memory())  # after the last event: numbers never repeat
        self.checkpointer.close()
        self.settings_keeper.close()
        if self.slave is not None:
            self.slave.stop()
        if self.rtu is not None:
            self.rtu.stop()
        if self.feed is not None:  # the last events to the telemetry, then its end of feed
            self.events.flush(2.0)
            self.feed.close()
        self._tell_helpers_to_stop()
        for child in (self._companion, self._telemetry):
            if child is not None:
                child.join(10.0)
                if child.is_alive():
                    child.kill()
        self._companion = self._telemetry = None
        self._helpers_gone.set()
        if self._supervisor is not None:
            self._supervisor.join(5.0)
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

