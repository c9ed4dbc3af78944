"""The real relay end to end: scan loop, companion process, plant, coils, events, memory."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.config import load
from softrelay.core import BusbarFlag, ChannelFault, PhasePair, ThermalFlag
from softrelay.records.events import read_events
from softrelay.records.thermal_memory import read_state
from softrelay.relay.commands import Request
from softrelay.relay.relay import Relay

from support.relays import Driver, fast_config, running

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not


@pytest.fixture
def relay(tmp_path):
    factory = MockFactory()
    with running(fast_config(tmp_path), factory=factory) as relay:
        relay.factory_used = factory
        yield relay


def test_alarm_trip_breaker_cooling_inhibit_reset_and_restart(relay, tmp_path):
    d = Driver(relay)
    pins = relay.factory_used
    d.until(lambda: d.thermal() & ThermalFlag.RUNNING, 10, "the motor running")
    d.until(lambda: d.thermal() & ThermalFlag.ALARM1, 10, "alarm 1")
    d.until(lambda: d.thermal() & ThermalFlag.TRIP, 10, "the trip")
    assert pins.pin(17).state, "the trip coil operates"
    assert not pins.pin(23).state, "the permissive drops"
    d.until(lambda: not d.thermal() & ThermalFlag.RUNNING, 2, "the breaker to open")
    assert d.thermal() & ThermalFlag.START_INHIBIT
    before = relay.events.next_seq - 1
    relay.commands.put(Request("reset", source="test"))
    # its answer, whatever the scan records after it (an overrun, on a busy machine)
    d.until(lambda: any(e.kind == "command" for e in relay.events.since(before)), 5,
            "the reset")
    assert d.thermal() & ThermalFlag.TRIP, "refused while hot"
    d.until(lambda: relay.core.thermal_outputs["theta"][0] < 0.7, 10, "cooling below reset")
    assert not d.thermal() & ThermalFlag.START_INHIBIT
    relay.commands.put(Request("reset", source="test"))
    d.until(lambda: not d.thermal() & ThermalFlag.TRIP, 5, "the reset accepted")
    d.until(lambda: pins.pin(23).state, 5, "the permissive")
    d.until(lambda: d.thermal() & ThermalFlag.RUNNING, 5, "the breaker to reclose")
    assert relay.core.thermal_state["start_count"][0] == 2
    texts = [(e.kind, e.source, e.text) for e in relay.events.ring]
    assert ("pickup", "motor1.trip", "") in texts and ("pickup", "coil.trip", "") in texts
    resets = [t for k, s, t in texts if k == "command"]
    assert "refused while theta >= theta_reset" in resets[0] and "trips reset" in resets[1]
    # Timing is the benchmark's business; here only that overruns are counted consistently.
    stats = relay.loop.stats
    assert stats.missed >= stats.overruns
    assert sum(1 for e in relay.events.ring if e.kind == "overrun") == stats.overruns


def test_the_joint_fault_and_a_failed_sensor_end_to_end(relay):
    d = Driver(relay)
    d.until(lambda: d.busbar() & BusbarFlag.CRITICAL, 15, "the critical joint")
    out = relay.core.busbar_outputs[0]
    # C is hot; A and B are alike, so the colder of them (noise decides) completes the pair.
    assert out["imbalance_pair"] in (PhasePair.BC, PhasePair.CA) and out["hottest_phase"] == 3
    d.until(lambda: d.busbar() & BusbarFlag.JOINT, 5, "the joint indicator")
    assert relay.core.busbar_outputs["joint_phase"][0] == 3
    d.until(lambda: relay.core.busbar_outputs["fault"][0, 3] & ChannelFault.IO, 10,
            "the ambient sensor's NACK")
    assert d.busbar() & BusbarFlag.AMBIENT_FAULT and d.busbar() & BusbarFlag.AMBIENT_FALLBACK
    # a failed sensor never silences an element: the rises go on over the 40 C fallback, and
    # the hot joint still alarms on them
    out = relay.core.busbar_outputs[0]
    assert out["max_rise"] == pytest.approx(out["level"][2] - 40.0)
    assert d.busbar() & (BusbarFlag.WARNING | BusbarFlag.CRITICAL)
    d.until(lambda: not relay.core.busbar_outputs["fault"][0, 3], 10, "the sensor back")
    d.until(lambda: d.busbar() & BusbarFlag.CRITICAL, 5, "critical again")
    kinds = [(e.kind, e.source) for e in relay.events.ring]
    assert ("fault", "bus1.ambient.io") in kinds and ("fault cleared", "bus1.ambient.io") in kinds


def test_thermal_memory_survives_a_restart_under_the_cool_policy(tmp_path):
    path = fast_config(tmp_path)
    relay = Relay(load(path), str(path), factory=MockFactory())
    relay.start()
    d = Driver(relay)
    d.until(lambda: d.thermal() & ThermalFlag.TRIP, 15, "the trip")
    theta_at_stop = float(relay.core.thermal_state["theta"][0])
    relay.stop()
    saved = read_state(tmp_path / "state.json")
    assert saved["points"]["motor1"]["trip_latched"] == 1
    assert saved["points"]["motor1"]["theta"] == pytest.approx(theta_at_stop)
    time.sleep(1.0)  # the outage
    again = Relay(load(path), str(path), factory=MockFactory())
    theta = float(again.core.thermal_state["theta"][0])
    outage = again.memory.restored.outage  # measured on the wall clock, however long start-up took
    assert outage is not None and outage >= 1.0
    assert theta < theta_at_stop
    assert theta == pytest.approx(theta_at_stop * math.exp(-outage / 6.0), rel=1e-6)  # T- 6 s
    assert again.core.thermal_state["trip_latched"][0] == 1  # still latched after restart
    restored = [e.text for e in again.events.ring if e.source == "memory"]
    assert restored[0].startswith("thermal memory restored, power-loss policy cool, outage")
    again.start()
    again.stop()
    events = read_events(tmp_path / "events.jsonl")
    assert any(e["text"].startswith("stopped: checkpoint written") for e in events)
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})  # never repeated


def test_sigterm_stops_cleanly_with_a_last_checkpoint(tmp_path):
    path = fast_config(tmp_path)
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
    proc = subprocess.Popen([sys.executable, "-m", "softrelay", "run", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    events = tmp_path / "events.jsonl"
    while time.monotonic() < deadline:
        if events.exists() and "pickup" in events.read_text():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped: checkpoint written, coils safe" in err
    assert "Traceback" not in err
    state = json.loads((tmp_path / "state.json").read_text())
    assert "motor1" in state["payload"]["points"]


def test_a_stalled_scan_drops_the_healthy_contact_and_stops_feeding_systemd(tmp_path):
    """The scan stops for 0.5 s (10 ms period, 20 periods allowed): the watchdog drops the
    healthy contact and records it; the next scan counts the skipped deadlines."""
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify")
    listener.bind(address)
    listener.setblocking(False)  # draining must not stall the scan it watches
    os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"] = address, "200000"
    try:
        path = fast_config(tmp_path)
        pins = MockFactory()
        relay = Relay(load(path), str(path), factory=pins)
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    relay.start()
    d = Driver(relay)
    try:
        d.until(lambda: pins.pin(24).state, 5, "the healthy contact")
        messages = []

        def drain():
            while True:
                try:
                    messages.append(listener.recv(4096).decode())
                except OSError:
                    return

        d.until(lambda: relay.loop.stats.scans > 50, 5, "some scans")
        drain()
        assert messages[0].startswith("READY=1") and "WATCHDOG=1" in messages
        messages.clear()
        time.sleep(0.5)  # the scan stalls
        drain()
        assert not pins.pin(24).state, "the healthy contact dropped during the stall"
        verdict = next(i for i, m in enumerate(messages)
                       if m.startswith("STATUS=NOT healthy: scan stalled: no scan for"))
        assert "WATCHDOG=1" not in messages[verdict:], "systemd was fed after the verdict"
        d.until(lambda: pins.pin(24).state, 2, "healthy again")
        assert relay.loop.stats.overruns >= 1 and relay.loop.stats.missed >= 40
        kinds = [(e.kind, e.source, e.text[:34]) for e in relay.events.ring]
        assert ("system", "healthy", "NOT healthy: scan stalled: no scan") in kinds
        assert any(k == "overrun" for k, _, _ in kinds)
    finally:
        relay.stop()
        listener.close()


def test_the_terminal_shows_a_live_status(tmp_path):
    """Under a pseudo-terminal (script(1)) the companion draws the status in place."""
    path = fast_config(tmp_path)
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
    cmd = f"timeout --foreground -s TERM 6 {sys.executable} -m softrelay run {path}"
    result = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                            text=True, env=env, timeout=60)
    screen = result.stdout
    assert "softrelay fast  scan 10 ms" in screen
    assert "motor1" in screen and "theta" in screen and "bus1" in screen
    assert "coils: trip" in screen and "HEALTHY" in screen
    assert "\x1b[2K" in screen  # redrawn in place


def test_the_status_is_not_drawn_where_it_cannot_be_seen():
    """Not a terminal, or a terminal of which we are not the foreground (SIGTTOU): silent."""
    import io

    from softrelay.screen import TerminalStatus, in_foreground

    stream = io.StringIO()
    TerminalStatus(stream).draw(["softrelay status"])
    assert stream.getvalue() == ""
    assert not in_foreground(stream)
