"""A blind relay says so: its only meter goes away, and every channel tells the DCS.

The real relay (scan here, companion process) polls a Modbus TCP meter that this test serves
on 127.0.0.1 and then stops serving: the link-down event comes within two polls with the
reason, the healthy contact drops by the declared policy, and a DCS reading the map over
Modbus sees it; the meter comes back on the same port: link up, healthy again.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from prometheus_client.parser import text_string_to_metric_families
from pymodbus.client import ModbusTcpClient

from softrelay import _shm
from softrelay.config import load
from softrelay.config.buses import ModbusTcpBus
from softrelay.relay.relay import Relay
from softrelay.sim.modbus_twin import twins_for
from softrelay.sim.twin_server import TwinServer
from softrelay.supervision.health import causes_of

from support.relays import Driver, running

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

POLL, TIMEOUT = 0.1, 0.3  # a loaded machine may be slow to answer: a timeout is a link down
HEALTHY_PIN = 24
METER = {"name": "meter", "unit": 1, "profile": "sdm630"}
CONFIG = f"""
name: blind
scan: {{period: 0.01, watchdog_periods: 50}}
state: {{file: DIR/state.json}}
HEALTHY
buses:
  - {{name: gw1, kind: modbus_tcp, host: 127.0.0.1, port: PORT, timeout: {TIMEOUT},
     max_backoff: 0.2, devices: [{METER}]}}
signals:
  - {{name: m1.ia, bus: gw1, address: meter.current.a, poll: {POLL}}}
  - {{name: m1.ib, bus: gw1, address: meter.current.b, poll: {POLL}}}
  - {{name: m1.ic, bus: gw1, address: meter.current.c, poll: {POLL}}}
points:
  - name: motor1
    kind: thermal
    currents: [m1.ia, m1.ib, m1.ic]
    settings: {{i_b: 100.0, t_heat: 600.0, t_cool: 1800.0, input_mode: magnitudes,
               stale_limit: 0.5}}
outputs:
  - {{name: healthy, pin: {HEALTHY_PIN}, healthy: true}}
modbus: {{host: 127.0.0.1, port: 0}}
metrics: {{host: 127.0.0.1, port: 0}}
"""


def meter_server(port: int = 0) -> tuple[TwinServer, int]:
    bus = ModbusTcpBus.model_validate({
        "name": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": 0,
        "simulated": True, "devices": [dict(METER, simulate={
            "current.a": "i", "current.b": "i", "current.c": "i"})]})
    server = TwinServer(twins_for(bus, lambda a: 80.0), "gw1")
    return server, server.start_tcp(port=port)


class Blind(Driver):
    """The relay scanned in this thread (``Driver.until`` steps it), its meter, and a DCS
    client on its slave."""

    def __init__(self, tmp_path, drop_on: str | None) -> None:
        self.server, self.port = meter_server()
        path = tmp_path / "blind.yaml"
        policy = f"healthy: {{drop_on: {drop_on}}}" if drop_on is not None else ""
        path.write_text(CONFIG.replace("DIR", str(tmp_path)).replace("PORT", str(self.port))
                        .replace("HEALTHY", policy))
        self.pins = MockFactory()
        super().__init__(Relay(load(path), str(path), factory=self.pins))
        self.relay.start()
        self.dcs = ModbusTcpClient("127.0.0.1", port=self.relay.slave.port, timeout=2)
        assert self.dcs.connect()

    def close(self) -> None:
        self.dcs.close()
        self.relay.stop()
        self.server.stop()

    def events(self, kind: str, source: str) -> list[str]:
        return [e.text for e in self.relay.events.ring if e.kind == kind and e.source == source]

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the relay's Prometheus scrape (None: not there)."""
        port = self.relay.telemetry_ports["metrics"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return None

    def healthy_contact(self) -> bool:
        return bool(self.pins.pin(HEALTHY_PIN).state)

    def dcs_healthy(self) -> int:
        """What the DCS reads: input register 9 (relay.healthy)."""
        return self.dcs_register("relay.healthy", "input_register")

    def dcs_register(self, name: str, table: str) -> int:
        """One entry of the map, read over Modbus/TCP as the DCS reads it (uint16, uint32 or
        a discrete input)."""
        e = self.relay.regmap.get(name, table)
        if table == "discrete_input":
            answer = self.dcs.read_discrete_inputs(e.address, count=1, device_id=1)
            assert not answer.isError(), answer
            return int(answer.bits[0])
        answer = self.dcs.read_input_registers(e.address, count=e.width, device_id=1)
        assert not answer.isError(), answer
        words = answer.registers
        return words[0] if e.width == 1 else (words[0] << 16) | words[1]


@pytest.fixture
def blind(tmp_path):
    relay = Blind(tmp_path, "[link_down]")
    yield relay
    relay.close()


@pytest.fixture
def default_blind(tmp_path):
    relay = Blind(tmp_path, None)  # the default policy: measurement_lost
    yield relay
    relay.close()


def test_a_blind_relay_says_so_on_every_channel_and_clears_when_the_meter_returns(
        default_blind):
    """The issue's end-to-end case: the meter goes away -> a link-down event within two
    polls, measurement lost after the delay, the healthy contact drops (the default policy),
    and the DCS reads all three over Modbus; the meter returns -> all clear."""
    b = default_blind
    b.until(lambda: b.healthy_contact() and b.dcs_healthy() == 1, 15, "a healthy relay")
    b.until(lambda: b.dcs_register("bus.gw1.link_down", "discrete_input") == 0, 5, "link up")
    assert b.dcs_register("motor1.measurement_lost", "discrete_input") == 0
    before = len(b.events("fault", "bus.gw1"))  # a slow answer before now is a link down too
    downs = b.dcs_register("bus.gw1.link_downs", "input_register")
    missed = b.relay.loop.stats.missed
    b.server.stop()
    gone = time.monotonic()
    b.until(lambda: len(b.events("fault", "bus.gw1")) > before, 10, "the link-down event")
    assert time.monotonic() - gone <= 2 * POLL + TIMEOUT + 0.5
    delay = b.relay.config.points[0].settings.input_loss_delay
    b.until(lambda: b.events("pickup", "motor1.measurement_lost"), 10, "measurement lost")
    # not before its delay, to the core's resolution: it times on the deadline grid, so the
    # first scan without usable currents counts its whole step (from the previous deadline,
    # and any deadline an overrun skipped): that much early at the most, as every core timer
    step = b.relay.config.scan.period * (1 + b.relay.loop.stats.missed - missed)
    assert time.monotonic() - gone >= delay - step
    b.until(lambda: not b.healthy_contact(), 5, "the healthy contact to drop")
    verdict = [e.text for e in b.relay.events.ring if e.source == "healthy"][-1]
    assert verdict == "NOT healthy: measurement lost: motor1"
    # the DCS tells blind from cool: all three, over Modbus
    b.until(lambda: b.dcs_healthy() == 0, 5, "the DCS to read not healthy")
    assert b.dcs_register("motor1.measurement_lost", "discrete_input") == 1
    assert b.dcs_register("relay.measurement_lost", "discrete_input") == 1
    assert b.dcs_register("relay.points_lost", "input_register") == 1
    assert b.dcs_register("bus.gw1.link_down", "discrete_input") == 1
    assert b.dcs_register("bus.gw1.link_downs", "input_register") == downs + 1
    word = b.dcs_register("relay.supervision", "input_register")
    assert causes_of(word) == ["measurement_lost", "link_down"]
    assert b.metric("softrelay_supervision_cause", cause="measurement_lost") == 1

    b.server, _ = meter_server(b.port)  # the meter returns
    b.until(lambda: b.events("fault cleared", "bus.gw1"), 10, "the link-up event")
    b.until(lambda: b.healthy_contact(), 5, "the healthy contact again")
    b.until(lambda: b.dcs_healthy() == 1, 5, "the DCS to read healthy")
    assert b.events("dropout", "motor1.measurement_lost")
    assert b.dcs_register("motor1.measurement_lost", "discrete_input") == 0
    assert b.dcs_register("bus.gw1.link_down", "discrete_input") == 0
    assert b.dcs_register("relay.supervision", "input_register") == 0


def test_a_lost_meter_is_a_link_down_event_with_its_reason_and_drops_the_healthy_contact(blind):
    """With link_down in the policy, the link alone drops the contact, at once."""
    b = blind
    b.until(lambda: b.healthy_contact() and b.dcs_healthy() == 1, 15, "a healthy relay")
    before = len(b.events("fault", "bus.gw1"))  # a slow answer before now is a link down too
    downs = b.metric("softrelay_bus_link_downs_total", bus="gw1")
    b.server.stop()  # the meter goes away: nobody listens on its port
    gone = time.monotonic()
    b.until(lambda: len(b.events("fault", "bus.gw1")) > before, 10, "the link-down event")
    took = time.monotonic() - gone
    assert took <= 2 * POLL + TIMEOUT + 0.5, f"link down after {took:.2f} s"
    (text,) = b.events("fault", "bus.gw1")[before:]
    assert text.startswith("link down: connection lost: ") or \
        text.startswith("link down: refused: "), text
    b.until(lambda: not b.healthy_contact(), 5, "the healthy contact to drop")
    assert b.dcs_healthy() == 0
    b.until(lambda: b.metric("softrelay_bus_link_up", bus="gw1") == 0, 5, "link_up 0")
    assert b.metric("softrelay_bus_link_downs_total", bus="gw1") == downs + 1
    assert b.metric("softrelay_healthy") == 0
    healthy = [e.text for e in b.relay.events.ring if e.source == "healthy"]
    assert healthy[-1] == "NOT healthy: link down: gw1"

    b.server, _ = meter_server(b.port)  # the meter comes back on the same port
    b.until(lambda: b.events("fault cleared", "bus.gw1"), 10, "the link-up event")
    assert b.events("fault cleared", "bus.gw1") == ["link up"]
    b.until(lambda: b.healthy_contact(), 5, "the healthy contact to pick up again")
    assert b.dcs_healthy() == 1
    b.until(lambda: b.metric("softrelay_bus_link_up", bus="gw1") == 1, 5, "link_up 1")


def test_a_lost_ambient_shows_the_fallback_in_the_map(tmp_path):
    """The demo's busbar with no readings at all (no I/O process): its ambient is faulted, the
    rises are taken over ambient_fallback, and the DCS reads that in the map: the fallback flag
    as a discrete input and in the flag word, the fallback value as a setting."""
    import struct

    from softrelay.core import BusbarFlag

    demo = (Path(__file__).parent.parent / "config" / "demo.yaml").read_text()
    path = tmp_path / "demo.yaml"
    path.write_text(demo.replace("\nstate:\n", f"\nstate:\n  dir: {tmp_path}\n")
                    .replace("port: 9650", "port: 0").replace("port: 5020", "port: 0"))
    with running(path, companion=False) as relay:
        for _ in range(5):
            relay.loop.step()
        server, regmap = relay.slave.server, relay.regmap

        def read(function: int, name: str, table: str) -> bytes:
            e = regmap.get(name, table)
            return server.read_pdu(struct.pack(">BHH", function, e.address, e.width))

        assert read(2, "bus1.ambient_fallback", "discrete_input") == bytes([2, 1, 1])
        flags = struct.unpack(">I", read(4, "bus1.flags", "input_register")[2:])[0]
        assert flags & BusbarFlag.AMBIENT_FALLBACK and flags & BusbarFlag.AMBIENT_FAULT
        value = struct.unpack(">f", read(3, "bus1.ambient_fallback", "holding_register")[2:])
        assert value[0] == relay.config.points[2].settings.ambient_fallback == 40.0


def test_an_io_process_stopped_mid_write_costs_new_inputs_never_the_scan(default_blind):
    """The I/O process stops (SIGSTOP) while it holds the input image mid-write. The scan goes
    on (each latch waits half a period at the most, then keeps the inputs it had), with one
    fault event; the inputs age into measurement lost and the healthy contact drops by the
    default policy. The process resumes: the event clears and the contact picks up again.
    (The latch used to raise TimeoutError out of the scan loop: the relay stopped.)"""
    b = default_blind
    relay = b.relay
    b.until(b.healthy_contact, 30, "the healthy contact")
    pid = relay.helpers.companion.pid
    os.kill(pid, signal.SIGSTOP)
    held = False
    try:
        try:  # what it was doing when it stopped (unless it really was mid-write)
            _shm.begin(relay.inputs.region)
            held = True
        except RuntimeError:
            pass
        scans = relay.loop.stats.scans
        b.until(lambda: b.events("fault", "input image"), 10, "the input image's fault event")
        b.until(lambda: not b.healthy_contact(), 30, "measurement lost to drop the contact")
        assert relay.loop.stats.scans >= scans + 10  # the scan never stopped
        assert b.dcs_healthy() == 0
        b.until(lambda: relay.loop.stats.scans >= scans + 40, 10, "more scans")
        assert len(b.events("fault", "input image")) == 1, "one event for one hold"
    finally:
        if held:
            _shm.end(relay.inputs.region)
        os.kill(pid, signal.SIGCONT)
    b.until(lambda: b.events("fault cleared", "input image"), 10, "the cleared event")
    b.until(b.healthy_contact, 30, "the healthy contact again")
