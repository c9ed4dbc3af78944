"""The MQTT publisher against a real mosquitto on 127.0.0.1: status (retained, last will),
events as they happen, telemetry, an outage that loses no event, TLS with client
certificates on a non-default port; and the disk queue itself."""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest

from softrelay.core import ThermalFlag
from softrelay.telemetry.spool import EventSpool

from support.broker import TOPIC, Broker, Subscriber, make_pki, make_relay
from support.relays import Driver
from support.scrape import scrape

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path).start()
    yield broker
    broker.stop()


def consecutive(events: list[dict]) -> bool:
    seqs = [e["seq"] for e in events]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_status_events_and_telemetry_reach_the_broker(tmp_path, broker):
    sub = Subscriber(broker, TOPIC)
    relay = make_relay(tmp_path, broker)
    try:
        relay.start()
        drive = Driver(relay)
        drive.until(lambda: any(s["state"] == "online" and s["healthy"]
                                for s in sub.of("status")), 20.0, "status: online, healthy")
        drive.until(lambda: drive.thermal() & ThermalFlag.TRIP, 30.0, "a trip")
        # the trip's event and its coil's (recorded a stage later, possibly a batch later)
        drive.until(lambda: {"motor1.trip", "coil.trip"} <= {e["source"]
                                                             for e in sub.of("events")},
                    10.0, "the trip's event and its coil's")
        events = sub.of("events")
        assert events[0]["source"] == "memory"  # from the very first event (at start)
        assert consecutive(events)
        trip = next(e for e in events if e["source"] == "motor1.trip")
        assert trip["kind"] == "pickup" and trip["wall"] > 0
        telemetry = sub.of("telemetry")
        assert len(telemetry) >= 3
        assert telemetry[-1]["points"]["motor1"]["theta"] > 0.9
        assert telemetry[-1]["points"]["bus1"]["temperature"]["ambient"] > 10.0
        assert telemetry[-1]["signals"]["m1.ia"]["quality"] == "good"
    finally:
        relay.stop()
    sub.wait_for(lambda: sub.of("status")[-1]["state"] == "offline", 5.0, "offline on stop")
    assert sub.of("events")[-1]["text"].startswith("stopped")  # the relay's last event too
    assert consecutive(sub.of("events"))
    retained = Subscriber(broker, TOPIC)  # a newcomer learns the state from the retained one
    retained.wait_for(lambda: retained.of("status"), 5.0, "the retained status")
    assert retained.of("status")[-1]["state"] == "offline"
    sub.close()
    retained.close()


def test_a_dead_publisher_leaves_its_will_and_is_started_again_missing_nothing(tmp_path,
                                                                               broker):
    from softrelay.relay.commands import Request

    sub = Subscriber(broker, TOPIC)
    relay = make_relay(tmp_path, broker)
    try:
        relay.start(companion=False)
        drive = Driver(relay)
        drive.until(lambda: sub.of("status") and sub.of("events"), 20.0, "status, events")
        os.kill(relay.helpers.telemetry.pid, signal.SIGKILL)
        relay.commands.put(Request("preset", ("motor1",), 0.7, "test"))  # while it is dead
        drive.until(lambda: sub.of("status")[-1]["state"] == "offline", 10.0, "the will")
        # the event recorded while the publisher was dead, and the restart's own (recorded
        # by the supervisor up to a second later: possibly after the preset)
        drive.until(lambda: {"preset motor1", "telemetry"} <= {e["source"]
                                                               for e in sub.of("events")},
                    30.0, "the event recorded while the publisher was dead, and the restart's")
        assert sub.of("status")[-1]["state"] == "online"  # started again
        events = sub.of("events")
        seqs = sorted({e["seq"] for e in events})  # at least once: the dead process's
        assert seqs == list(range(seqs[0], seqs[-1] + 1))  # unacknowledged come again; no gap
        restart = next(e for e in events if e["source"] == "telemetry")
        assert restart["kind"] == "fault" and "exited (code -9)" in restart["text"]
    finally:
        relay.stop()
    sub.close()


def test_events_in_a_killed_publishers_socket_are_sent_again(tmp_path, broker):
    """Events the feed had written to the publisher's socket, which the publisher never read
    (it was stopped, then killed), reach the broker from its successor: the feed resends
    after what the telemetry confirmed as spooled, not after what it sent. After the stop,
    the successor itself says offline (it lived until the end: not the broker's will)."""
    sub = Subscriber(broker, TOPIC)
    relay = make_relay(tmp_path, broker)
    try:
        relay.start(companion=False)
        drive = Driver(relay)
        drive.until(lambda: sub.of("status") and sub.of("events"), 20.0, "status, events")
        drive.until(lambda: relay.feed.acked >= sub.of("events")[-1]["seq"], 5.0,
                    "the publisher's confirmation of what it spooled")
        publisher = relay.helpers.telemetry.pid
        os.kill(publisher, signal.SIGSTOP)  # alive, reading nothing: the feed fills its socket
        written = [relay.events.record("system", "test", f"written to the socket {i}")
                   for i in range(5)]
        drive.until(lambda: relay.feed.last_sent >= written[-1].seq, 5.0,
                    "the events written to the stopped publisher's socket")
        os.kill(publisher, signal.SIGKILL)
        drive.until(lambda: sub.of("status")[-1]["state"] == "offline", 10.0, "the will")
        drive.until(lambda: relay.helpers.telemetry.pid != publisher and sub.of("status")[-1][
            "state"] == "online", 30.0, "a publisher started again")
        seen = lambda: {e["seq"] for e in sub.of("events")}  # noqa: E731
        drive.until(lambda: {e.seq for e in written} <= seen(), 10.0,
                    f"the events {[e.seq for e in written]} the killed publisher never read")
        seqs = sorted(seen())
        assert seqs == list(range(seqs[0], seqs[-1] + 1))  # no gap
    finally:
        relay.stop()
    sub.wait_for(lambda: sub.of("events")[-1]["text"].startswith("stopped"), 5.0,
                 "the relay's last event, from the publisher started again")
    sub.wait_for(lambda: sub.of("status")[-1]["state"] == "offline", 5.0, "offline on stop")
    assert "firmware" in sub.of("status")[-1]  # said by the publisher, not its will
    sub.close()


def test_a_broker_outage_loses_no_event(tmp_path):
    """The broker stops (the trip and its events happen meanwhile) and comes back: every event
    the relay recorded reaches the subscriber, in order. The subscriber keeps a session with
    the broker, as a plant's historian does, so what the relay replays before the subscriber is
    back is queued for it (the test then depends on no race between their reconnects)."""
    broker = Broker(tmp_path, persistent=True).start()
    sub = Subscriber(broker, TOPIC, session="historian")
    relay = make_relay(tmp_path, broker, more="metrics: {host: 127.0.0.1, port: 0}\n")
    try:
        relay.start()
        drive = Driver(relay)
        drive.until(lambda: sub.of("events"), 20.0, "the first events")
        assert scrape(relay.telemetry_ports["metrics"])["softrelay_mqtt_connected"][()] == 1
        first = sub.of("events")[0]["seq"]
        sub.close()
        before = sub.of("events")
        broker.stop()  # the outage: the trip and its events happen during it
        drive.until(lambda: drive.thermal() & ThermalFlag.TRIP, 30.0, "a trip")
        trip_seq = next(e.seq for e in relay.events.newest(200) if e.source == "motor1.trip")
        with sqlite3.connect(tmp_path / "mqtt.sqlite") as db:
            drive.until(lambda: db.execute("SELECT COUNT(*) FROM events WHERE seq = ?",
                                           (trip_seq,)).fetchone()[0] == 1, 5.0,
                        "the trip kept on disk")
        m = scrape(relay.telemetry_ports["metrics"])  # the outage, as the metrics say it
        assert m["softrelay_mqtt_connected"][()] == 0
        assert m["softrelay_mqtt_events_queued"][()] >= 1
        assert m["softrelay_mqtt_events_dropped_total"][()] == 0
        broker.start()  # same port; the publisher reconnects by itself (back-off <= 30 s)
        sub = Subscriber(broker, TOPIC, session="historian")
        drive.until(lambda: any(e["seq"] == trip_seq for e in sub.of("events")), 45.0,
                    "the trip's event after the outage")
        drive.until(lambda: sub.of("status"), 5.0, "status again")
        recorded = [e.seq for e in relay.events.newest(1000) if e.seq >= first]
        drive.until(lambda: max(e["seq"] for e in sub.of("events")) >= recorded[-1], 20.0,
                    "every event recorded until now")  # later ones may still be on their way
        after = sub.of("events")
        unique = list({e["seq"]: e for e in after}.values())  # at least once: repeats allowed
        assert consecutive(unique)  # replayed in order, no gap
        seen = {e["seq"] for e in before + after}
        assert set(recorded) <= seen, f"lost: {sorted(set(recorded) - seen)}"
    finally:
        relay.stop()
        sub.close()
        broker.stop()


def test_tls_with_client_certificates_on_a_non_default_port(tmp_path):
    pki = make_pki(tmp_path)
    broker = Broker(tmp_path, pki=pki).start()
    try:
        sub = Subscriber(broker, TOPIC)
        tls = (f", tls: {{ca: {pki['ca']}, cert: {pki['client']}, "
               f"key: {pki['client_key']}}}")
        relay = make_relay(tmp_path, broker, tls)
        try:
            relay.start(companion=False)
            sub.wait_for(lambda: sub.of("status") and sub.of("events"), 20.0,
                         "status and events over TLS")
            assert sub.of("status")[-1]["state"] == "online"
        finally:
            relay.stop()
        sub.close()
        log = (tmp_path / f"mosquitto-{broker.port}.log").read_text()
        assert "softrelay-fast" in log  # the relay's own client id, seen by the broker
    finally:
        broker.stop()


def test_the_disk_queue_is_bounded_counts_drops_and_survives_a_reopen(tmp_path):
    spool = EventSpool(tmp_path / "q.sqlite", max_events=10)
    dropped = sum(spool.put(seq, f'{{"seq": {seq}}}') for seq in range(1, 16))
    assert dropped == 5 and spool.dropped == 5 and len(spool) == 10
    assert spool.put(12, "again") == 0 and len(spool) == 10  # a number kept once
    assert [s for s, _ in spool.pending(0, 3)] == [6, 7, 8]  # oldest first, oldest dropped
    spool.remove(6)
    assert [s for s, _ in spool.pending(7, 100)] == list(range(8, 16))
    spool.close()
    again = EventSpool(tmp_path / "q.sqlite", max_events=10)
    assert len(again) == 9 and again.dropped == 5
    assert again.pending(0, 1)[0] == (7, '{"seq": 7}')
    again.close()
