"""The telemetry process: metrics, MQTT and SNMP traps, away from the scan's interpreter.

Spawned by the relay when any of ``metrics``, ``mqtt`` or ``snmp`` is configured. It attaches
to the output snapshot and the input image (read only), receives each event over the feed, and
hands it to the publishers. It never writes anything the scan reads: if it stalls or dies, the
relay protects as before; the feed counts the events it could not take.

It never outlives the scan process (``softrelay.scan.lifeline``): the kernel kills it when the
scan process dies, and its loop exits at once if it finds its parent gone, so the metrics port
is free for the relay's next start and the broker's last will says "offline".
"""

from __future__ import annotations

import logging
import os
import socket
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as StopEvent

from softrelay.config.relay import RelayConfig
from softrelay.image.shared import Attachment, LayoutMismatchError
from softrelay.logs import configure_logging
from softrelay.scan.helper import enter_helper
from softrelay.scan.lifeline import ORPHANED_EXIT, REFUSED_EXIT, orphaned
from softrelay.telemetry.feed import EventReceiver
from softrelay.telemetry.reading import RelayView

log = logging.getLogger("softrelay.telemetry")


class Telemetry:
    """The publishers of one relay, fed by ``pump`` (events, the periodic telemetry)."""

    def __init__(self, config: RelayConfig, view: RelayView, receiver: EventReceiver) -> None:
        self.config = config
        self.view = view
        self.receiver = receiver
        self.metrics = None
        self.mqtt = None
        self.snmp = None
        if config.metrics is not None:
            from softrelay.telemetry.metrics import MetricsServer, RelayCollector

            collector = RelayCollector(config, view.read, self.own_figures)
            self.metrics = MetricsServer(collector, config.metrics.host, config.metrics.port)
            log.info("metrics on http://%s:%d/metrics", config.metrics.host, self.metrics.port)
        if config.mqtt is not None:
            from softrelay.telemetry.mqtt import MqttPublisher

            self.mqtt = MqttPublisher(config, view.read)
            self.mqtt.start()
        if config.snmp is not None:
            from softrelay.telemetry.snmp import TrapSender

            self.snmp = TrapSender(config)

    def own_figures(self) -> list[tuple[str, str, float, str]]:
        """The telemetry's own figures for the metrics: (name, help, value, kind)."""
        figures: list[tuple[str, str, float, str]] = [
            ("telemetry_events_missed", "events the telemetry never received (the feed was "
             "full)", self.receiver.missed, "counter")]
        if self.mqtt is not None:
            figures += self.mqtt.figures()
        if self.snmp is not None:
            figures += self.snmp.figures()
        return figures

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for events and pass them on (then confirmed to the relay:
        on the MQTT disk queue, sent as traps); then the periodic work."""
        events = self.receiver.receive(timeout)
        if events:
            if self.mqtt is not None:
                self.mqtt.events(events)
            if self.snmp is not None:
                self.snmp.events(events)
            self.receiver.confirm(events[-1]["seq"])
        else:
            self.receiver.confirm(0)  # one the socket could not take before
        if self.mqtt is not None:
            self.mqtt.tick()

    def close(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.snmp is not None:
            self.snmp.close()
        if self.metrics is not None:
            self.metrics.close()


def telemetry_main(config_json: str, snapshot: Attachment, inputs: Attachment,
                   events: socket.socket, stop: StopEvent, ready: Connection,
                   avoid_cpu: int | None = None, quiet: bool = False,
                   parent_pid: int | None = None, priority: int = 0) -> None:
    """Entry point of the telemetry process (spawned by the runtime); ``avoid_cpu``: the
    scan's CPU, kept free of this process; ``quiet``: warnings only (the terminal view is
    on); ``parent_pid``: the scan process, which this one must not outlive (default: the
    parent); ``priority``: SCHED_FIFO priority of its threads, 0: normal (never the scan's)."""
    parent_pid = enter_helper(parent_pid, priority, avoid_cpu, lambda: configure_logging(quiet))
    config = RelayConfig.model_validate_json(config_json)  # the scan's, not the file's
    try:
        view = RelayView(config, snapshot, inputs)
    except LayoutMismatchError as exc:  # said to the relay, which refuses to start with it
        log.error("the telemetry process cannot attach: %s", exc)
        ready.send(f"it cannot attach: {exc}")
        raise SystemExit(REFUSED_EXIT) from None
    receiver = EventReceiver(events)
    try:
        telemetry = Telemetry(config, view, receiver)
    except Exception as exc:  # said to the relay, which refuses to start with it
        view.close()
        ready.send(str(exc) or repr(exc))
        raise SystemExit(1) from None  # the relay says it, in one line
    ready.send({"metrics": telemetry.metrics.port} if telemetry.metrics else {})
    ready.close()
    try:
        while not stop.is_set():
            if orphaned(parent_pid):
                log.error("the scan process (pid %d) is gone: the telemetry stops",
                          parent_pid)
                os._exit(ORPHANED_EXIT)
            telemetry.pump(0.1)
        deadline = time.monotonic() + 2.0  # the relay's last events, up to its end of feed
        while not receiver.closed and time.monotonic() < deadline:
            telemetry.pump(0.05)
    finally:
        telemetry.close()
        receiver.close()
        view.close()
