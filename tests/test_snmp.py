"""SNMPv3 traps (authPriv, SHA + AES) from a running relay, received and decrypted by net-snmp's
snmptrapd on 127.0.0.1; a receiver with another privacy key reads nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.config import load
from softrelay.core import ThermalFlag
from softrelay.runtime import Relay
from softrelay.telemetry.snmp import DROPOUT, HEALTHY, PICKUP, UNHEALTHY, trap_of

from mqtt_helpers import free_port
from test_metrics import scrape, with_sections
from test_relay_e2e import Driver

AUTH, PRIV = "auth-pass-1234", "priv-pass-5678"
ENTERPRISE = "1.3.6.1.4.1.8072.9999.9999.49"


class TrapReceiver:
    """snmptrapd, in the foreground, logging numeric OIDs to a file."""

    def __init__(self, directory: Path, engine_id: str, priv: str = PRIV) -> None:
        program = shutil.which("snmptrapd") or shutil.which("/usr/sbin/snmptrapd")
        assert program, "snmptrapd is not installed: `make test` installs it (apt-get " \
                        "install snmptrapd)"
        self.port = free_port()
        self.log = directory / f"traps-{self.port}.log"
        conf = directory / f"snmptrapd-{self.port}.conf"
        conf.write_text(f'createUser -e 0x{engine_id} softrelay SHA "{AUTH}" AES "{priv}"\n'
                        "authUser log softrelay priv\n")
        self.process = subprocess.Popen(
            [program, "-f", "-On", "-C", "-c", str(conf), "-M", "/dev/null", "-Lf",
             str(self.log), f"udp:127.0.0.1:{self.port}"],
            env={**os.environ, "SNMP_PERSISTENT_DIR": str(directory / "snmp-persist")},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10.0
        while "NET-SNMP version" not in self.text():
            assert self.process.poll() is None, f"snmptrapd ended: {self.text()}"
            assert time.monotonic() < deadline, "snmptrapd did not start"
            time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def traps(self) -> list[str]:
        return [line for line in self.text().splitlines() if ".1.3.6.1.6.3.1.1.4.1.0" in line]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5.0)


def snmp_relay(tmp_path, port: int, priv: str = PRIV) -> Relay:
    section = (f"\nsnmp: {{host: 127.0.0.1, port: {port}, user: softrelay, auth_key_env: "
               f"TEST_SNMP_AUTH, priv_key: {priv}}}\nmetrics: {{host: 127.0.0.1, port: 0}}\n")
    path = with_sections(tmp_path, section)
    return Relay(load(path), str(path), factory=MockFactory())


@pytest.fixture(autouse=True)
def auth_key_in_the_environment(monkeypatch):
    monkeypatch.setenv("TEST_SNMP_AUTH", AUTH)  # the spawned telemetry process inherits it


def test_a_trip_sends_a_v3_trap_that_snmptrapd_decrypts(tmp_path):
    engine = "80001f8804" + b"fast".hex()  # the default: from the relay's name
    receiver = TrapReceiver(tmp_path, engine)
    relay = snmp_relay(tmp_path, receiver.port)
    try:
        relay.start()
        drive = Driver(relay)
        drive.until(lambda: drive.thermal() & ThermalFlag.TRIP, 30.0, "a trip")
        drive.until(lambda: any('"motor1.trip"' in t for t in receiver.traps()), 10.0,
                    "the trip's trap")
        drive.until(lambda: relay.loop.stats.scans % 50 == 1, 2.0, "a refresh")
        figures = scrape(relay.telemetry_ports["metrics"])
    finally:
        relay.stop()
        receiver.stop()
    trip = next(t for t in receiver.traps() if '"motor1.trip"' in t)
    assert f"OID: .{ENTERPRISE}.0.{PICKUP}" in trip
    assert f'.{ENTERPRISE}.1.2 = STRING: "fast"' in trip
    assert f'.{ENTERPRISE}.1.4 = STRING: "pickup"' in trip
    healthy = [t for t in receiver.traps() if f"OID: .{ENTERPRISE}.0.{HEALTHY}" in t]
    assert healthy, "the healthy contact's trap at start"
    assert figures["softrelay_snmp_traps_sent_total"][()] >= 2
    assert figures["softrelay_snmp_traps_failed_total"][()] == 0


def test_a_receiver_with_another_privacy_key_reads_nothing(tmp_path):
    engine = "80001f8804" + b"fast".hex()
    receiver = TrapReceiver(tmp_path, engine, priv="not-the-relays-key")
    relay = snmp_relay(tmp_path, receiver.port)
    try:
        relay.start(companion=False)
        drive = Driver(relay)
        drive.until(lambda: relay.loop.stats.scans > 50, 10.0, "scans")  # the healthy trap
        time.sleep(1.0)
    finally:
        relay.stop()
        receiver.stop()
    assert receiver.traps() == []
    # the trap arrived (USM, security model 3) and could not be read: garbage once decrypted
    assert "security service 3 error parsing ScopedPDU" in receiver.text()


@pytest.mark.parametrize(("event", "trap"), [
    ({"kind": "pickup", "source": "motor1.trip", "text": ""}, PICKUP),
    ({"kind": "dropout", "source": "bus1.critical", "text": ""}, DROPOUT),
    ({"kind": "pickup", "source": "motor1.alarm1", "text": ""}, None),
    ({"kind": "pickup", "source": "coil.trip", "text": ""}, None),  # the coil, not the flag
    ({"kind": "system", "source": "healthy", "text": "NOT healthy: scan stalled"}, UNHEALTHY),
    ({"kind": "system", "source": "healthy", "text": "healthy: scanning"}, HEALTHY),
    ({"kind": "fault", "source": "bus1.ambient.io", "text": ""}, None),
])
def test_which_events_send_a_trap(event, trap):
    assert trap_of(event, ("trip", "critical"), True) == trap
