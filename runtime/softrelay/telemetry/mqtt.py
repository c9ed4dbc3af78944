"""The MQTT publisher: events as they happen, telemetry at a fixed rate, a retained status.

Topics under ``<prefix>`` (default ``softrelay/<relay name>``):

- ``<prefix>/status`` (retained): ``{"state": "online", "healthy": ...}`` on connecting and
  whenever the healthy contact changes; the last will, left with the broker, says
  ``{"state": "offline"}`` when the relay vanishes, and a clean stop says so itself.
- ``<prefix>/events`` (QoS ``qos``): one JSON object per event (``seq``, ``wall``, ``kind``,
  ``source``, ``text``), oldest first. An event is put on the disk queue (``EventSpool``) when
  it arrives and removed when the broker acknowledges it; after an outage or a restart the
  queue is replayed, in order. Delivery is at least once: a consumer that must see each event
  once keeps the highest ``seq`` it has.
- ``<prefix>/telemetry`` (QoS 0): the relay's figures (``view.document``) every
  ``telemetry_every`` seconds.

Threads: paho's network thread connects, reconnects (1 s doubling to 30 s) and reports
acknowledgements; everything else, every publish included, runs in the telemetry process's main
loop (``events``, ``tick``), so the bookkeeping has one writer. Nothing here can block the scan:
it runs in another process.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as paho

from softrelay.config.relay import RelayConfig
from softrelay.config.state import state_paths
from softrelay.modbus.regmap import firmware_version
from softrelay.telemetry.reading import Reading, document
from softrelay.telemetry.spool import EventSpool

log = logging.getLogger("softrelay.mqtt")

UNACKED_MAX = 100  #: events handed to paho and not yet acknowledged


class MqttPublisher:
    def __init__(self, config: RelayConfig, read: Callable[[], Reading],
                 clock: Callable[[], float] = time.monotonic) -> None:
        m = config.mqtt
        if m is None:
            raise ValueError(f"relay {config.name}: no mqtt section: nothing to publish to")
        queue = state_paths(config).mqtt_queue
        assert queue is not None, "with an mqtt section, state_paths names its queue file"
        self.config = config
        self.settings = m
        self.read = read
        self.clock = clock
        self.prefix = m.prefix(config.name)
        self.spool = EventSpool(queue, m.queue.max_events)
        self.published = 0  #: events the broker acknowledged
        self.connected = False
        self._connections = 0  #: set by the network thread on each CONNACK
        self._served = 0  #: connections the main loop has greeted (status, replay)
        self._acks: collections.deque[int] = collections.deque()  # mids, network thread
        self._unacked: dict[int, int] = {}  #: mid -> event seq
        self._sent_up_to = 0  #: highest seq handed to paho on this connection
        self._next_telemetry = 0.0
        self._healthy: bool | None = None
        self._lock = threading.Lock()  # the network thread's counters
        client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id=m.client_id or f"softrelay-{config.name}",
                             clean_session=True)
        if m.username is not None:
            client.username_pw_set(m.username, m.password_value())
        if m.tls is not None:
            client.tls_set_context(tls_context(m.tls))
        client.will_set(self.topic("status"), json.dumps({"state": "offline",
                                                          "name": config.name}),
                        qos=m.qos, retain=True)
        client.reconnect_delay_set(1, 30)
        client.max_inflight_messages_set(20)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        self.port = m.broker_port

    def topic(self, leaf: str) -> str:
        return f"{self.prefix}/{leaf}"

    # ------------------------------------------------------------ network thread

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s",
                        self.settings.host, self.port, reason)
            return
        with self._lock:
            self._connections += 1
        log.info("MQTT connected to %s:%d", self.settings.host, self.port)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        with self._lock:
            self._connections += 1  # odd/even does not matter: the main loop sees a change
            self.connected = False
        log.warning("MQTT disconnected from %s:%d (%s); events are kept on disk",
                    self.settings.host, self.port, reason)

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        self._acks.append(mid)

    # ------------------------------------------------------------ main loop

    def start(self) -> None:
        self.client.connect_async(self.settings.host, self.port, self.settings.keepalive)
        self.client.loop_start()

    def events(self, events: list[dict]) -> None:
        """New events from the relay: kept on disk, then sent when connected."""
        for event in events:
            dropped = self.spool.put(event["seq"], json.dumps(event))
            if dropped:
                log.warning("MQTT queue full (%d events): %d oldest dropped",
                            self.settings.queue.max_events, dropped)
        self._drain()

    def tick(self) -> None:
        """Acknowledgements, a new connection's greeting, the telemetry when due."""
        while self._acks:
            mid = self._acks.popleft()
            seq = self._unacked.pop(mid, None)
            if seq is None:  # the status or the telemetry
                continue
            self.spool.remove(seq)
            self.published += 1
        with self._lock:
            connections = self._connections
        if connections != self._served:
            self._served = connections
            self._unacked.clear()  # a new session: what was in flight is sent again
            self._sent_up_to = 0
            self.connected = self.client.is_connected()
            self._healthy = None  # the status again
        if not self.connected:
            return
        now = self.clock()
        if now >= self._next_telemetry or self._healthy is None:
            reading = self.read()
            healthy = bool(reading.stats["healthy"])
            if healthy != self._healthy:
                self._healthy = healthy
                self._publish_status("online", healthy)
            if now >= self._next_telemetry:
                self._next_telemetry = now + self.settings.telemetry_every
                self.client.publish(self.topic("telemetry"),
                                    json.dumps(document(self.config, reading)), qos=0)
        self._drain()

    def _publish_status(self, state: str, healthy: bool | None = None) -> paho.MQTTMessageInfo:
        major, minor, patch = firmware_version()
        payload = {"state": state, "name": self.config.name, "healthy": healthy,
                   "firmware": f"{major}.{minor}.{patch}", "time": round(time.time(), 3),
                   "queued": len(self.spool), "dropped": self.spool.dropped}
        return self.client.publish(self.topic("status"), json.dumps(payload),
                                   qos=self.settings.qos, retain=True)

    def _drain(self) -> None:
        """Hand kept events to paho, oldest first, while connected and under the limit."""
        if not self.connected:
            return
        while len(self._unacked) < UNACKED_MAX:
            batch = self.spool.pending(self._sent_up_to, UNACKED_MAX - len(self._unacked))
            if not batch:
                return
            for seq, payload in batch:
                info = self.client.publish(self.topic("events"), payload,
                                           qos=self.settings.qos)
                if info.rc != paho.MQTT_ERR_SUCCESS:  # the link went: sent again later
                    return
                self._sent_up_to = seq
                self._unacked[info.mid] = seq  # acknowledged in a later tick

    def figures(self) -> list[tuple[str, str, float, str]]:
        """For the metrics: (name, help, value, kind)."""
        return [("mqtt_connected", "1 while connected to the broker", float(self.connected),
                 "gauge"),
                ("mqtt_events_queued", "events kept on disk, not yet acknowledged",
                 len(self.spool), "gauge"),
                ("mqtt_events_published", "events the broker acknowledged", self.published,
                 "counter"),
                ("mqtt_events_dropped", "events dropped from the full disk queue",
                 self.spool.dropped, "counter")]

    def stop(self, timeout: float = 2.0) -> None:
        """Say offline (retained), let what is in flight go, disconnect."""
        if self.connected:
            deadline = time.monotonic() + timeout
            while self._unacked and time.monotonic() < deadline:
                time.sleep(0.02)
                self.tick()
            info = self._publish_status("offline")
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(deadline - time.monotonic(), 0.1))
        self.client.disconnect()
        self.client.loop_stop()
        self.spool.close()


def tls_context(tls) -> ssl.SSLContext:
    """The client's TLS: the broker's certificate checked against ``tls.ca`` (and its host
    name), this relay's certificate when given, nothing older than ``tls.min_version``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificate and host name
    context.minimum_version = (ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3"
                               else ssl.TLSVersion.TLSv1_2)
    context.load_verify_locations(cafile=str(tls.ca))
    if tls.cert is not None:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    return context
