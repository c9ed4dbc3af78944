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
import sys
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event

from softrelay.config.buses import Sampling
from softrelay.config.relay import RelayConfig
from softrelay.field.device import Device
from softrelay.field.registry import BusKindError, open_bus, plant_model
from softrelay.field.sensor_bus import DeferredBus
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
from softrelay.scan.helper import enter_helper
from softrelay.scan.lifeline import ORPHANED_EXIT, orphaned

log = logging.getLogger("softrelay.field")


def bus_device(bus, plant, sampling: Sampling | None = None) -> Device:
    """The device behind a configured bus (``registry.open_bus``: its driver imported only
    when configured, so a missing smbus2 never breaks a relay that has no I2C bus). A bus
    whose code cannot be found (``BusKindError``) is a faulted bus, its reason the error, not
    a companion that dies. ``plant``: the simulated plant (``registry.plant_model``), or
    None."""
    try:
        return open_bus(bus, plant, sampling)
    except BusKindError:
        return DeferredBus(bus.name, bus.timeout, lambda: open_bus(bus, plant, sampling))


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
                   priority: int = 0, view: Callable[[], Callable | None] | None = None) -> None:
    """Entry point of the companion process (spawned by the runtime).

    ``config_json``: the scan's validated configuration (``RelayConfig.model_dump_json``),
    validated again here: the same configuration whatever the file says by now.

    ``avoid_cpu``: the CPU the scan is pinned to; the companion keeps off it (it would
    otherwise inherit the scan's affinity), so the scan's CPU serves the scan alone.
    ``parent_pid``: the scan process, which this one must not outlive (default: the parent).
    ``priority``: SCHED_FIFO priority of this process's threads, 0: normal (never the scan's).
    ``view``: with ``status``, called here once ready: the drawer of the terminal view
    ``(config, snapshot tables)`` or None (the relay's, ``relay.terminal.terminal_view``).
    """
    parent_pid = enter_helper(parent_pid, priority, avoid_cpu, lambda: configure_logging(
        terminal=status and sys.stdout.isatty()))  # as the scan process does
    config = RelayConfig.model_validate_json(config_json)
    inputs = SharedImage(input_layout(config), name=input_name, create=False)
    snapshot = SharedImage(snapshot_layout(config, register_layout(register_maps(config))),
                           name=snapshot_name, create=False)
    plant = None
    if config.plant is not None:
        plant = plant_model(config.plant,
                            CoilReader(snapshot, [o.name for o in config.outputs]))
    publish = signal_writer(inputs, window_rows(config))
    devices: dict[str, Device] = {}  #: bus name -> what faults are injected into
    workers: list = []
    modbus_links = []
    modbus_devices = []  #: their links polled by the poller, closed (twins stopped) last
    schedules = {}  #: bus row -> its poll schedule (the counters)
    for row, bus in enumerate(config.buses):
        polled = [Polled(i, s.address, s.poll, s.scale, s.offset, s.stuck_after or 0)
                  for i, s in enumerate(config.signals) if s.bus == bus.name]
        device = bus_device(bus, plant, config.sampling)
        devices[bus.name] = device
        link = getattr(device, "link", None)
        if link is not None:  # Modbus: every link polled from one event loop
            modbus_links.append((link, polled, row))
            modbus_devices.append(device)
            continue
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
    draw = view() if status and view is not None else None
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
            if draw is not None and time.monotonic() - drawn_at >= status_every:
                draw(config, snapshot.read())
                drawn_at = time.monotonic()
    finally:
        for worker in workers:
            worker.stop(timeout=30.0)
        for device in modbus_devices:
            device.close()
        if any(worker.alive for worker in workers):
            log.warning("a bus worker is still in a device call: leaving the images mapped")
        else:
            inputs.close()
            snapshot.close()
