"""The companion process: everything Python that must not hold the scan's interpreter lock.

It attaches to the two shared images the scan process created, runs one worker thread per bus
(polling the field devices into the input image), the plant model when the configuration has
one (reading coil states from the output snapshot, so a trip opens the breaker), the scheduled
faults, and the terminal status. The scan process never waits for it: if it stalls or dies,
the signals age, the core flags them stale, and the relay says so.

It never outlives the scan process (``softrelay.scan.lifeline``): the kernel kills it when the
scan process dies, and its loop exits at once (without waiting for the bus workers) if it finds
its parent gone, so no field device is polled by a relay that no longer protects.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from multiprocessing.synchronize import Event

from softrelay.config.schema import RelayConfig, Sampling
from softrelay.field.device import Device
from softrelay.field.worker import BusWorker, Polled
from softrelay.image.shared import SharedImage
from softrelay.image.signals import (
    bus_counter_writer,
    input_layout,
    signal_writer,
    window_rows,
)
from softrelay.image.snapshot import snapshot_layout
from softrelay.logs import configure_logging
from softrelay.modbus.register_image import register_layout, register_maps
from softrelay.scan.lifeline import ORPHANED_EXIT, bind_to_parent, orphaned
from softrelay.scan.realtime import helper_priority, keep_off_cpu
from softrelay.screen import TerminalStatus, render
from softrelay.sim.devices import SimulatedDevice
from softrelay.sim.plant import PlantModel

log = logging.getLogger("softrelay.field")


def make_device(bus, plant: PlantModel | None, sampling: Sampling | None = None) -> Device:
    """The device behind a configured bus; drivers are imported only when configured (a
    missing smbus2 never breaks a relay that has no I2C bus)."""
    if bus.kind == "simulated":
        return SimulatedDevice(bus.name, bus.timeout, plant)
    if bus.kind == "i2c":
        from softrelay.field.i2c.device import i2c_bus_device

        return i2c_bus_device(bus, plant.read if plant is not None else None)
    if bus.kind == "spi":
        from softrelay.field.spi.device import spi_bus_device

        return spi_bus_device(bus, plant, sampling)
    raise ValueError(f"bus {bus.name!r}: no driver for kind {bus.kind!r}")


def make_modbus(bus, plant: PlantModel | None):
    """(link, twin server or None) of a configured Modbus bus; a simulated bus gets its devices
    served on loopback (TCP) or a pty (RTU), and the link talks to them for real."""
    from softrelay.field.modbus.master import rtu_link, tcp_link

    if not bus.simulated:
        return (tcp_link(bus) if bus.kind == "modbus_tcp" else rtu_link(bus)), None
    from softrelay.sim.modbus_twin import twins_for
    from softrelay.sim.twin_server import TwinServer

    server = TwinServer(twins_for(bus, plant.read if plant is not None else None), bus.name)
    if bus.kind == "modbus_tcp":
        return tcp_link(bus, port=server.start_tcp(bus.host, bus.port)), server
    return rtu_link(bus, port=server.start_rtu()), server


class CoilReader:
    """Coil states from the snapshot, refreshed at most every ``every`` seconds."""

    def __init__(self, snapshot: SharedImage, names: list[str], every: float = 0.01) -> None:
        self.snapshot = snapshot
        self.index = {name: i for i, name in enumerate(names)}
        self.every = every
        self._at = -1.0
        self._coils: list[bool] = [False] * len(names)

    def __call__(self, name: str) -> bool:
        now = time.monotonic()
        if now - self._at >= self.every:
            self._coils = [bool(c) for c in self.snapshot.read()["coils"]]
            self._at = now
        return self._coils[self.index[name]]


def companion_main(config_json: str, input_name: str, snapshot_name: str, stop: Event,
                   ready: Event, status: bool = False, status_every: float = 0.5,
                   avoid_cpu: int | None = None, parent_pid: int | None = None,
                   priority: int = 0) -> None:
    """Entry point of the companion process (spawned by the runtime).

    ``config_json``: the scan's validated configuration (``RelayConfig.model_dump_json``),
    validated again here: the same configuration whatever the file says by now.

    ``avoid_cpu``: the CPU the scan is pinned to; the companion keeps off it (it would
    otherwise inherit the scan's affinity), so the scan's CPU serves the scan alone.
    ``parent_pid``: the scan process, which this one must not outlive (default: the parent).
    ``priority``: SCHED_FIFO priority of this process's threads, 0: normal (never the scan's).
    """
    parent_pid = parent_pid or os.getppid()
    bind_to_parent(parent_pid)
    helper_priority(priority)
    keep_off_cpu(avoid_cpu)
    # Ctrl-C (and a SIGTERM sent to the whole group or cgroup: timeout, systemd) reaches this
    # process too: stopping is the scan process's decision (it writes the last checkpoint and
    # drops the coils first, then sets ``stop``). A companion killed while it waits on ``stop``
    # would leave the event's set() waiting for it forever.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(terminal=status and sys.stdout.isatty())  # as the scan process does
    config = RelayConfig.model_validate_json(config_json)
    inputs = SharedImage(input_layout(config), name=input_name, create=False)
    snapshot = SharedImage(snapshot_layout(config, register_layout(register_maps(config))),
                           name=snapshot_name, create=False)
    plant = None
    if config.plant is not None:
        plant = PlantModel(config.plant, CoilReader(snapshot, [o.name for o in config.outputs]))
    publish = signal_writer(inputs, window_rows(config))
    devices: dict[str, Device] = {}  #: bus name -> what faults are injected into
    workers: list = []
    modbus_links = []
    servers = []
    schedules = {}  #: bus row -> its poll schedule (the counters)
    for row, bus in enumerate(config.buses):
        polled = [Polled(i, s.address, s.poll, s.scale, s.offset, s.stuck_after or 0)
                  for i, s in enumerate(config.signals) if s.bus == bus.name]
        if bus.kind in ("modbus_tcp", "modbus_rtu"):
            link, server = make_modbus(bus, plant)
            modbus_links.append((link, polled, row))
            if server is not None:
                devices[bus.name] = server
                servers.append(server)
            continue
        device = make_device(bus, plant, config.sampling)
        devices[bus.name] = device
        workers.append(BusWorker(device, polled, publish, max_backoff=bus.max_backoff,
                                 after_read=lambda: publish_counters()))
        schedules[row] = workers[-1].schedule
    if modbus_links:
        from softrelay.field.modbus.poller import ModbusPoller

        poller = ModbusPoller([(link, polled) for link, polled, _ in modbus_links], publish,
                              after_read=lambda: publish_counters())
        for (_, _, row), (_, schedule) in zip(modbus_links, poller.links, strict=True):
            schedules[row] = schedule
        workers.append(poller)
    publish_counters = bus_counter_writer(inputs, schedules)  # before the first read
    for worker in workers:
        worker.start()
    ready.set()
    view = TerminalStatus(sys.stdout) if status and sys.stdout.isatty() else None
    active: set[int] = set()
    drawn_at = 0.0
    try:
        while not stop.wait(0.05):
            if orphaned(parent_pid):  # no field device is polled once the relay is gone
                log.error("the scan process (pid %d) is gone: the I/O process stops",
                          parent_pid)
                os._exit(ORPHANED_EXIT)  # now: the bus workers stop before their next read
            publish_counters()
            if plant is not None:
                now = plant.time()
                for i, fault in enumerate(config.plant.faults):
                    on = now >= fault.start and (fault.stop is None or now < fault.stop)
                    if on and i not in active:
                        devices[fault.bus].inject(fault.address, fault.kind, sigma=fault.sigma)
                        active.add(i)
                        log.info("plant: fault %s at %s injected", fault.kind, fault.address)
                    elif not on and i in active:
                        devices[fault.bus].clear(fault.address)
                        active.discard(i)
                        log.info("plant: fault %s at %s cleared", fault.kind, fault.address)
            if view is not None and time.monotonic() - drawn_at >= status_every:
                view.draw(render(config, snapshot.read()))
                drawn_at = time.monotonic()
    finally:
        for worker in workers:
            worker.stop(timeout=30.0)
        for server in servers:
            server.stop()
        if any(worker.alive for worker in workers):
            log.warning("a bus worker is still in a device call: leaving the images mapped")
        else:
            inputs.close()
            snapshot.close()
