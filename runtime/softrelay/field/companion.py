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
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.synchronize import Event
from typing import Any, Protocol, runtime_checkable

from softrelay.config.buses import Sampling
from softrelay.config.identity import config_hash
from softrelay.config.plant import PlantFault
from softrelay.config.relay import RelayConfig
from softrelay.field.device import Device
from softrelay.field.registry import BusKindError, open_bus, plant_model
from softrelay.field.sensor_bus import DeferredBus
from softrelay.field.worker import BusWorker, Polled
from softrelay.image.shared import Attachment, LayoutMismatchError, SharedImage, attach_all
from softrelay.image.signals import BusCounters, bus_counter_writer, signal_writer, window_rows
from softrelay.logs import configure_logging
from softrelay.scan.helper import enter_helper
from softrelay.scan.lifeline import ORPHANED_EXIT, REFUSED_EXIT, orphaned

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


def attach_images(inputs: Attachment, snapshot: Attachment, configuration: int
                  ) -> tuple[SharedImage, SharedImage]:
    """(the input image, the output snapshot), attached with the layouts the scan process
    handed over (it created them): ``LayoutMismatchError``, naming both fingerprints, when a
    segment was made with another layout, or both hashes when made for a configuration other
    than ``configuration`` (the hash of the one this process runs on)."""
    input_image, snapshot_image = attach_all((inputs, snapshot), configuration)
    return input_image, snapshot_image


@runtime_checkable
class FaultTarget(Protocol):
    """A simulated bus that can be given the plant's scheduled faults."""

    def inject(self, address: str, kind: str, **params: float) -> None: ...

    def clear(self, address: str | None = None) -> None: ...


class FaultSchedule:
    """The plant's scheduled faults (``plant.faults``), each injected into its bus's device
    while plant time is in its [start, stop) window, cleared after (``step``)."""

    def __init__(self, faults: Sequence[PlantFault], devices: Mapping[str, Device]) -> None:
        self.faults = list(faults)
        self.targets: list[FaultTarget] = []
        for fault in self.faults:
            device = devices[fault.bus]
            if not isinstance(device, FaultTarget):  # the references refuse a real bus
                raise TypeError(f"plant fault on bus {fault.bus!r}: {type(device).__name__} "
                                "takes no faults")
            self.targets.append(device)
        self.active: set[int] = set()

    def step(self, now: float) -> None:
        """Inject the faults whose window began by plant time ``now``, clear those ended."""
        for i, (fault, target) in enumerate(zip(self.faults, self.targets, strict=True)):
            on = now >= fault.start and (fault.stop is None or now < fault.stop)
            if on and i not in self.active:
                target.inject(fault.address, fault.kind, sigma=fault.sigma)
                self.active.add(i)
                log.info("plant: fault %s at %s injected", fault.kind, fault.address)
            elif not on and i in self.active:
                target.clear(fault.address)
                self.active.discard(i)
                log.info("plant: fault %s at %s cleared", fault.kind, fault.address)


class FieldBuses:
    """Every configured bus behind its device, polled into the input image: one worker
    thread per bus, every Modbus link from one event loop (``ModbusPoller``); the bus
    counters published after each read. ``start()``, then ``stop()``."""

    def __init__(self, config: RelayConfig, inputs: SharedImage, plant: Any) -> None:
        publish = signal_writer(inputs, window_rows(config))
        self.devices: dict[str, Device] = {}  #: bus name -> what faults are injected into
        self.workers: list[Any] = []
        self.modbus_devices: list[Device] = []  #: closed (twins stopped) after the poller
        schedules: dict[int, BusCounters] = {}  #: bus row -> its poll schedule (the counters)
        modbus_links = []
        for row, bus in enumerate(config.buses):
            polled = [Polled(i, s.address, s.poll, s.scale, s.offset, s.stuck_after or 0)
                      for i, s in enumerate(config.signals) if s.bus == bus.name]
            device = bus_device(bus, plant, config.sampling)
            self.devices[bus.name] = device
            link = getattr(device, "link", None)
            if link is not None:  # Modbus: every link polled from one event loop
                modbus_links.append((link, polled, row))
                self.modbus_devices.append(device)
                continue
            worker = BusWorker(device, polled, publish, max_backoff=bus.max_backoff,
                               after_read=self._after_read)
            self.workers.append(worker)
            schedules[row] = worker.schedule
        if modbus_links:
            from softrelay.field.modbus.poller import ModbusPoller

            poller = ModbusPoller([(link, polled) for link, polled, _ in modbus_links],
                                  publish, after_read=self._after_read)
            for (_, _, row), (_, schedule) in zip(modbus_links, poller.links, strict=True):
                schedules[row] = schedule
            self.workers.append(poller)
        self.publish_counters = bus_counter_writer(inputs, schedules)  # before any read

    def _after_read(self) -> None:
        self.publish_counters()

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> bool:
        """Stop the workers, then close the Modbus devices; False while a worker is still in
        a device call (the images must then stay mapped)."""
        for worker in self.workers:
            worker.stop(timeout=30.0)
        for device in self.modbus_devices:
            device.close()
        return not any(worker.alive for worker in self.workers)


def serve(stop: Event, parent_pid: int, buses: FieldBuses, plant: Any,
          faults: FaultSchedule | None, draw: Callable[[], None] | None,
          status_every: float) -> None:
    """The companion's loop until ``stop``: the bus counters, the plant's faults, the
    terminal view every ``status_every`` s. Exits the process at once when the scan process
    is gone (no field device is polled once the relay is)."""
    drawn_at = 0.0
    while not stop.wait(0.05):
        if orphaned(parent_pid):
            log.error("the scan process (pid %d) is gone: the I/O process stops", parent_pid)
            os._exit(ORPHANED_EXIT)  # now: the bus workers stop before their next read
        buses.publish_counters()
        if faults is not None:
            faults.step(plant.time())
        if draw is not None and time.monotonic() - drawn_at >= status_every:
            draw()
            drawn_at = time.monotonic()


def companion_main(config_json: str, inputs: Attachment, snapshot: Attachment, stop: Event,
                   ready: Event, status: bool = False, status_every: float = 0.5,
                   avoid_cpu: int | None = None, parent_pid: int | None = None,
                   priority: int = 0, view: Callable[[], Callable | None] | None = None) -> None:
    """Entry point of the companion process (spawned by the runtime).

    ``config_json``: the scan's validated configuration (``RelayConfig.model_dump_json``),
    validated again here: the same configuration whatever the file says by now.
    ``inputs``, ``snapshot``: the two images the scan process created, with their layouts
    (``SharedImage.attachment()``): attached as handed over, never computed again here; a
    segment of another layout, or made for another configuration, refuses the companion (its
    log line names both fingerprints or both hashes; it exits with ``REFUSED_EXIT`` before it
    is ready).

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
    try:
        input_image, snapshot_image = attach_images(inputs, snapshot, config_hash(config))
    except LayoutMismatchError as exc:
        log.error("the I/O process cannot attach: %s", exc)
        sys.exit(REFUSED_EXIT)
    plant, faults = None, None
    if config.plant is not None:
        plant = plant_model(config.plant,
                            CoilReader(snapshot_image, [o.name for o in config.outputs]))
    buses = FieldBuses(config, input_image, plant)
    if config.plant is not None:
        faults = FaultSchedule(config.plant.faults, buses.devices)
    buses.start()
    ready.set()
    drawer = view() if status and view is not None else None
    draw = None if drawer is None else lambda: drawer(config, snapshot_image.read())
    try:
        serve(stop, parent_pid, buses, plant, faults, draw, status_every)
    finally:
        if buses.stop():
            input_image.close()
            snapshot_image.close()
        else:
            log.warning("a bus worker is still in a device call: leaving the images mapped")
