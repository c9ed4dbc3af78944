"""The relay's wiring: everything ``softrelay run`` is made of, built from one configuration
in the order data flows (``assemble``), and ``build_relay``, the one way to get a relay.

This module only connects parts; what each part does is its own module's. The relay's own
ports (Modbus slave, RTU line) are taken here: one it cannot take is a ``StartupError``; a
failure part-way is undone by the relay (``Relay._undo_assembly``), so nothing leaks.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from softrelay.config.points import BusbarPoint, ThermalPoint
from softrelay.config.relay import RelayConfig
from softrelay.core import (
    CHANNEL_NAMES,
    BusbarFlag,
    ChannelFault,
    ProtectionCore,
    ThermalFlag,
    flag_bits,
)
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
from softrelay.image.shared import SharedImage
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
from softrelay.relay import stages
from softrelay.relay.children import Helpers
from softrelay.relay.commands import CommandQueue
from softrelay.relay.errors import StartupError, port_error
from softrelay.relay.inputs import InputLatch, LostMeasurements
from softrelay.relay.memory import ThermalMemory
from softrelay.relay.settings import SettingsService
from softrelay.scan.clock import MonotonicClock, ScanClock
from softrelay.scan.loop import ScanLoop, ScanStats
from softrelay.service.notify import Notifier
from softrelay.supervision.health import Supervision
from softrelay.supervision.links import LinkWatcher
from softrelay.supervision.watchdog import Watchdog
from softrelay.telemetry.feed import EventFeed, feed_pair

log = logging.getLogger("softrelay")

THERMAL_EVENT_FLAGS = {bit: name for name, bit in flag_bits(ThermalFlag)
                       if bit not in (ThermalFlag.TRIP_PICKUP, ThermalFlag.RESET_REJECTED)}
BUSBAR_EVENT_FLAGS = {bit: name for name, bit in flag_bits(BusbarFlag)}
FAULT_BITS = {bit: name for name, bit in flag_bits(ChannelFault)}

if TYPE_CHECKING:
    from softrelay.relay.relay import Relay


def build_relay(config: RelayConfig, config_path: str | None = None, *,
                clock: ScanClock | None = None, factory: object | None = None,
                status: bool = False) -> Relay:
    """The relay of ``config``, assembled (not started): ``start()``, ``run()``, ``stop()``.
    ``config_path``: where ``config`` was read from, for the messages only (the helpers are
    given ``config`` itself); ``clock``: the scan's (default: CLOCK_MONOTONIC at the
    configured period); ``factory``: the caller's pin factory (tests), over gpio.factory."""
    from softrelay.relay.relay import Relay

    return Relay(config, config_path, clock=clock, factory=factory, status=status)


def assemble(relay: Relay, config: RelayConfig, prefix: str, clock: ScanClock | None,
             factory: object | None, status: bool) -> None:
    """Everything ``relay`` is made of, in the order data flows, set as its attributes;
    ``prefix``: its shared images' (``image.shared.segment_prefix``)."""
    relay.status = status
    thermal = list(config.thermal_points)
    busbar = list(config.busbar_points)
    relay.thermal_names = [p.name for p in thermal]
    relay.busbar_names = [p.name for p in busbar]
    # settings changed in service (over Modbus) and kept: over the file's, while it is
    # the file they were made over
    relay.settings = SettingsService(config, relay.paths.memory)
    relay.maps = register_maps(config)  #: by snapshot prefix: the whole map, unit groups
    relay.regmap = relay.maps[IMAGE_PREFIX]
    sampled = any(p.samples for p in thermal)
    relay.core = ProtectionCore(relay.settings.thermal_start, relay.settings.busbar_start,
                                window_length=config.sampling.window_length if sampled else 0,
                                samples_per_cycle=config.sampling.samples_per_cycle)
    period_ns = round(config.scan.period * 1e9)
    relay.clock = clock or MonotonicClock(period_ns)

    ev = config.events
    first_seq = last_seq(relay.paths.events) + 1 if relay.paths.events else 1
    relay.events = EventRecorder(ev.ring_size, relay.paths.events, first_seq,
                                 max_bytes=ev.max_bytes, keep=ev.keep)
    relay.feed = None  # to the telemetry: from the first event on
    feed_receiver: socket.socket | None = None  # the telemetry process's end
    if config.metrics is not None or config.mqtt is not None or config.snmp is not None:
        sender, feed_receiver = feed_pair()
        relay.feed = EventFeed(sender)
        relay.events.listeners.append(relay.feed.send)
    relay.memory = ThermalMemory(config, relay.paths.memory, relay.thermal_names, relay.core,
                                 relay.events)
    relay.memory.restore()
    assert relay.memory.checkpointer is not None, "restore() makes the checkpointer"
    relay.checkpointer = relay.memory.checkpointer

    if relay.instance.previous is not None:
        relay.events.record("system", "relay", f"the previous instance (pid "
                            f"{relay.instance.previous}) did not stop cleanly: its shared "
                            "memory reclaimed")
    made_for = relay.regmap.config_hash  # the map's register; the helpers check their own
    relay.inputs = SharedImage(input_layout(config), name=f"{prefix}-inputs",
                               configuration=made_for)
    with relay.inputs.writing() as t:
        t["signals"][:] = empty_signals(len(config.signals))
    relay.snapshot = SharedImage(snapshot_layout(config, register_layout(relay.maps)),
                                 name=f"{prefix}-snapshot", configuration=made_for)
    relay.input_map = InputMap(config)
    relay.helpers = Helpers(config, relay.inputs.attachment(), relay.snapshot.attachment(),
                            relay.events, status=status, feed=relay.feed,
                            feed_receiver=feed_receiver)

    index: dict[str, tuple[str, int, ThermalPoint | BusbarPoint]] = {
        p.name: ("thermal", i, p) for i, p in enumerate(thermal)}
    index.update({p.name: ("busbar", i, p) for i, p in enumerate(busbar)})
    if factory is not None:  # the caller's (tests): it wins over gpio.factory
        relay.gpio = GpioChoice(factory, "given", f"{type(factory).__name__} given by the "
                                "caller", simulated=isinstance(factory, MockFactory))
    else:
        try:
            relay.gpio = choose_pin_factory(config.gpio.factory)
        except GpioError as exc:
            raise StartupError(str(exc)) from None
    relay.factory = relay.gpio.factory
    if relay.gpio.warning:  # auto fell back to mock pins: a relay that operates nothing
        log.warning("gpio: %s", relay.gpio.warning)
        relay.events.record("system", "gpio", f"warning: {relay.gpio.warning}")
    relay.events.record("system", "gpio", f"coils driven by {relay.gpio.text}")
    relay.coils = CoilBank(config.outputs, index, factory=relay.factory,
                           on_change=relay._coil_changed)
    relay.memory.latches = lambda: {c.name: c.latched for c in relay.coils.coils}
    stats = ScanStats(relay.clock.period_ns)
    relay.commands = CommandQueue(relay.thermal_names, relay.coils.release_latches,
                                  relay.events.record, clear_statistics=stats.clear)
    relay.buttons = CommandButtons(config.inputs, relay.commands, factory=relay.factory)
    relay.settings.open(relay.events.record)
    limit = config.scan.watchdog_periods * config.scan.period
    relay.systemd = Notifier()
    relay.supervision = Supervision(config.healthy.drop_on, relay._set_healthy, checks=[
        ("self_test", "event writer", lambda: relay.events.trouble),
        ("self_test", "thermal memory", lambda: relay.checkpointer.trouble),
        ("self_test", "kept settings", lambda: relay.settings.trouble),
        ("self_test", "I/O process", relay.helpers.companion_trouble),
        ("telemetry_down", "telemetry process", relay.helpers.telemetry_trouble)])
    relay.watchdog = Watchdog(
        limit, lambda fresh, why: relay.supervision.set("scan_stall", not fresh, why),
        feed_systemd=relay.systemd.feed, also=relay.supervision.poll)
    relay.links = LinkWatcher([b.name for b in config.buses], relay.events)
    relay.latch = InputLatch(relay.inputs, relay.input_map, relay.links, relay.supervision,
                             relay.events.record, config.scan.period)
    relay.lost = LostMeasurements(relay.thermal_names, relay.busbar_names, relay.supervision,
                                  relay.links)

    fault_names = [f"{b}.{c}" for b in relay.busbar_names for c in CHANNEL_NAMES]
    relay.watchers = [
        (FlagWatcher(relay.thermal_names, THERMAL_EVENT_FLAGS, relay.events),
         lambda core: core.thermal_outputs["flags"]),
        (FlagWatcher(relay.busbar_names, BUSBAR_EVENT_FLAGS, relay.events),
         lambda core: core.busbar_outputs["flags"]),
        (FlagWatcher(fault_names, FAULT_BITS, relay.events, "fault", "fault cleared"),
         lambda core: core.busbar_outputs["fault"].reshape(-1)),
    ]
    relay.event_window = EventWindow(relay.events, relay.regmap.event_sources)
    relay.slave = None
    relay.rtu = None
    relay.authority = None
    relay.local_remote = None
    if config.modbus is not None or config.modbus_rtu is not None:
        _modbus_slaves(relay, config, status)
    authority = relay.authority
    relay.publisher = SnapshotPublisher(
        relay.snapshot, stats, lambda: list(relay.coils.state().values()),
        lambda: relay.events.next_seq - 1, lambda: relay.supervision.healthy,
        providers=[RegisterPublisher(
            regmap, lambda: relay.settings.applied,
            (lambda: authority.engineer_held) if authority is not None else lambda: False,
            relay.event_window, prefix, tables={"links": relay.links.table})
            for prefix, regmap in relay.maps.items()],
        modbus_counters=relay._modbus_counters if relay.slave is not None else None,
        supervision=relay.lost.figures,
        access=relay._access_figures if authority is not None else None)
    relay.loop = ScanLoop(
        relay.core, relay.clock, stages.bind({
            stages.LATCH.name: relay.latch, stages.SETTINGS.name: relay.settings.apply,
            stages.COMMANDS.name: relay.commands.apply, stages.CORE.name: None,
            stages.SETTLE.name: relay.commands.settle,
            stages.EVENTS.name: relay._record_edges,
            stages.SUPERVISION.name: relay.lost,
            stages.COILS.name: relay.coils.drive,
            stages.CHECKPOINT.name: relay.memory,
            stages.KEEP_SETTINGS.name: relay.settings.keep,
            stages.PUBLISH.name: relay.publisher.publish}),
        on_overrun=lambda missed, now: relay.events.record(
            "overrun", "scan", f"{missed} period(s) skipped", now),
        heartbeat=relay.watchdog.beat,
        stats=stats,
    )
    relay.systemd.describe = relay.describe
    relay.running = False


def _modbus_slaves(relay: Relay, config: RelayConfig, status: bool) -> None:
    """The access levels (and the local/remote switch), then the Modbus/TCP slave and the RTU
    slave the configuration asks for, their ports taken (``StartupError`` when one cannot be)."""
    access = config.access
    if access.local_remote is not None:
        relay.local_remote = LocalRemoteSwitch(access.local_remote, factory=relay.factory,
                                               record=relay.events.record)
    relay.authority = authority = Authority(
        access.codes(), access.minutes, access.levels.model_dump(),
        LockoutPolicy(**access.lockout.model_dump()), record=relay.events.record,
        local=relay.local_remote.local if relay.local_remote is not None else None)
    if config.modbus is not None:
        m = config.modbus
        try:
            relay.slave = SlaveService(m, relay.maps, relay.snapshot, RelayWrites(
                relay.commands, relay.settings, authority, relay.events.record,
                events=relay.event_window), avoid_cpu=config.scan.realtime.cpu,
                quiet=status, helper_priority=config.scan.realtime.helper_priority)
        except TlsPortError as exc:
            raise StartupError(port_error("the Modbus TLS port", "modbus.tls.port", m.host,
                                          m.tls.port if m.tls is not None else None,
                                          exc)) from None
        except OSError as exc:
            raise StartupError(port_error("the Modbus slave", "modbus.port", m.host,
                                          m.port, exc)) from None
    if config.modbus_rtu is not None:
        logic = (relay.slave.logic[IMAGE_PREFIX] if relay.slave is not None
                 else SlaveLogic(relay.regmap))  # the TCP side's, when there is one
        try:
            relay.rtu = RtuSlave(config.modbus_rtu, logic, relay.snapshot,
                                 RelayWrites(relay.commands, relay.settings, authority,
                                             relay.events.record, source="modbus-rtu",
                                             events=relay.event_window))
        except OSError as exc:  # pyserial's SerialException is one
            raise StartupError(str(open_fault("serial", config.modbus_rtu.port, exc,
                                              " for the RTU slave"))) from None
