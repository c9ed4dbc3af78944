"""SNMPv3 traps (authPriv) from a running relay, received and decrypted by net-snmp's snmptrapd on
127.0.0.1: every authentication and privacy protocol the ``snmp`` section offers (SHA-512 with
AES-256 the strongest), and a receiver that expects other protocols or another key reads
nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.cli.summary import telemetry_lines
from softrelay.config import load
from softrelay.config.loader import ConfigError
from softrelay.config.telemetry import SNMP_AUTH, SNMP_PRIV
from softrelay.core import ThermalFlag
from softrelay.relay.relay import Relay
from softrelay.telemetry.snmp import DROPOUT, HEALTHY, PICKUP, UNHEALTHY, TrapSender, trap_of

from support.ports import free_port
from support.relays import Driver
from support.scrape import scrape, with_sections
from support.waits import wait_for

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

AUTH, PRIV = "auth-pass-1234", "priv-pass-5678"
ENTERPRISE = "1.3.6.1.4.1.8072.9999.9999.49"
ENGINE = "80001f8804" + b"fast".hex()  # the default: from the relay's name


class TrapReceiver:
    """snmptrapd, in the foreground, logging numeric OIDs to a file; ``users`` are
    (name, net-snmp's auth protocol, its privacy protocol, privacy pass phrase)."""

    def __init__(self, directory: Path, engine_id: str, priv: str = PRIV,
                 users: list[tuple[str, str, str, str]] | None = None) -> None:
        program = shutil.which("snmptrapd") or shutil.which("/usr/sbin/snmptrapd")
        assert program, "snmptrapd is not installed: `make test` installs it (apt-get " \
                        "install snmptrapd)"
        users = users or [("softrelay", "SHA", "AES", priv)]
        self.port = free_port()
        self.log = directory / f"traps-{self.port}.log"
        conf = directory / f"snmptrapd-{self.port}.conf"
        conf.write_text("".join(f'createUser -e 0x{engine_id} {name} {auth} "{AUTH}" {pp} '
                                f'"{key}"\nauthUser log {name} priv\n'
                                for name, auth, pp, key in users))
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
        assert "Error" not in self.text() and "rror:" not in self.text(), self.text()

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def traps(self) -> list[str]:
        return [line for line in self.text().splitlines() if ".1.3.6.1.6.3.1.1.4.1.0" in line]

    def texts(self) -> list[str]:
        """The text varbind (E.1.5) of every trap read."""
        marker = f".{ENTERPRISE}.1.5 = STRING: \""
        return [t.split(marker, 1)[1].split("\"", 1)[0] for t in self.traps() if marker in t]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5.0)


def snmp_section(port: int, priv: str = PRIV, protocols: str = "", user: str = "softrelay"
                 ) -> str:
    return (f"\nsnmp: {{host: 127.0.0.1, port: {port}, user: {user}, auth_key_env: "
            f"TEST_SNMP_AUTH, priv_key: {priv}{protocols}}}\n")


def snmp_relay(tmp_path, port: int, priv: str = PRIV, protocols: str = "") -> Relay:
    section = snmp_section(port, priv, protocols) + "metrics: {host: 127.0.0.1, port: 0}\n"
    path = with_sections(tmp_path, section)
    return Relay(load(path), str(path), factory=MockFactory())


def send_one(tmp_path: Path, port: int, user: str, auth: str, priv: str, text: str) -> None:
    """One pickup trap through the relay's TrapSender, with these protocols, its text
    (E.1.5) ``text``; returns when it is on its way."""
    directory = tmp_path / text
    directory.mkdir()
    config = load(with_sections(directory, snmp_section(
        port, user=user, protocols=f", auth_protocol: {auth}, priv_protocol: {priv}")))
    sender = TrapSender(config)
    try:
        sender.events([{"kind": "pickup", "source": "motor1.trip", "text": text, "seq": 1,
                        "wall": time.time()}])
    finally:
        sender.close()
    assert (sender.sent, sender.failed, sender.dropped) == (1, 0, 0)


@pytest.fixture(autouse=True)
def auth_key_in_the_environment(monkeypatch):
    monkeypatch.setenv("TEST_SNMP_AUTH", AUTH)  # the spawned telemetry process inherits it


@pytest.mark.parametrize(("protocols", "auth", "priv"), [
    ("", "SHA", "AES"),  # the defaults: what receivers configured before the choice expect
    (", auth_protocol: sha512, priv_protocol: aes256", "SHA-512", "AES-256"),
], ids=["default-sha-aes128", "sha512-aes256"])
def test_a_trip_sends_a_v3_trap_that_snmptrapd_decrypts(tmp_path, protocols, auth, priv):
    receiver = TrapReceiver(tmp_path, ENGINE, users=[("softrelay", auth, priv, PRIV)])
    relay = snmp_relay(tmp_path, receiver.port, protocols=protocols)
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


PAIRS = [(a, p) for a in SNMP_AUTH for p in SNMP_PRIV]


def test_every_protocol_pair_is_decrypted_by_snmptrapd_under_net_snmps_names(tmp_path):
    """Each pair to its own user, whose entry names the protocols as net-snmp spells them
    (SNMP_AUTH, SNMP_PRIV): the key extensions included (sha with aes256 is Blumenthal's,
    with aes256c Reeder's)."""
    users = [(f"u-{a}-{p}", SNMP_AUTH[a].net_snmp, SNMP_PRIV[p].net_snmp, PRIV)
             for a, p in PAIRS]
    receiver = TrapReceiver(tmp_path, ENGINE, users=users)
    try:
        for a, p in PAIRS:
            send_one(tmp_path, receiver.port, f"u-{a}-{p}", a, p, f"{a}+{p}")
        wait_for(lambda: len(receiver.texts()) >= len(PAIRS), 10.0, "trap of every pair")
    finally:
        receiver.stop()
    assert sorted(receiver.texts()) == sorted(f"{a}+{p}" for a, p in PAIRS)


@pytest.mark.parametrize(("expected", "sent", "why"), [
    (("sha512", "aes256"), ("sha", "aes256"), "Authentication failed for expects"),
    (("sha", "aes256"), ("sha512", "aes256"), "Authentication failed for expects"),
    (("sha512", "aes256"), ("sha512", "aes128"), "security service 3 error parsing"),
    # a 20-byte SHA key extended to AES-256's 32: Reeder's bytes are not Blumenthal's
    (("sha", "aes256"), ("sha", "aes256c"), "security service 3 error parsing"),
    (("sha", "aes256c"), ("sha", "aes256"), "security service 3 error parsing"),
], ids=["sha-to-sha512", "sha512-to-sha", "aes128-to-aes256", "reeder-to-blumenthal",
        "blumenthal-to-reeder"])
def test_a_receiver_expecting_other_protocols_reads_nothing(tmp_path, expected, sent, why):
    """The protocols are really used: a sender that does not match the receiver's user
    entry is not read, while one that does, to the same receiver, is."""
    entry = (SNMP_AUTH[expected[0]].net_snmp, SNMP_PRIV[expected[1]].net_snmp, PRIV)
    receiver = TrapReceiver(tmp_path, ENGINE, users=[("expects", *entry),
                                                     ("control", *entry)])
    try:
        send_one(tmp_path, receiver.port, "expects", *sent, "mismatched")
        send_one(tmp_path, receiver.port, "control", *expected, "matching")
        wait_for(lambda: "matching" in receiver.texts(), 10.0, "control trap")
        wait_for(lambda: why in receiver.text(), 5.0, f"{why!r} in snmptrapd's log")
    finally:
        receiver.stop()
    assert receiver.texts() == ["matching"], receiver.text()


def test_a_receiver_with_another_privacy_key_reads_nothing(tmp_path):
    receiver = TrapReceiver(tmp_path, ENGINE, priv="not-the-relays-key")
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


def test_check_prints_the_protocols_and_the_receivers_user_entry(tmp_path):
    config = load(with_sections(tmp_path, snmp_section(
        162, protocols=", auth_protocol: sha512, priv_protocol: aes256")))
    line, receiver = telemetry_lines(config)[2:4]
    assert line.startswith("  snmp traps: v3 authPriv SHA-512 + AES-256 (no key extension: "
                           "AES-256 and AES-256-C alike) to 127.0.0.1:162"), line
    assert receiver == (f'    receiver (snmptrapd.conf): createUser -e 0x{ENGINE} softrelay '
                        'SHA-512 "<auth_key>" AES-256 "<priv_key>"')
    default = load(with_sections(tmp_path, snmp_section(162)))
    assert "v3 authPriv SHA + AES to" in telemetry_lines(default)[2]
    short = load(with_sections(tmp_path, snmp_section(
        162, protocols=", priv_protocol: aes256c")))
    assert ("SHA + AES-256-C (key extended by Reeder (draft-reeder-snmpv3-usm-3desede-00, "
            "Cisco's): the receiver must say AES-256-C)") in telemetry_lines(short)[2]


@pytest.mark.parametrize(("protocols", "key", "reason"), [
    (", auth_protocol: md5", "snmp.auth_protocol", "MD5 is broken"),
    (", priv_protocol: des", "snmp.priv_protocol", "a 56-bit key"),
    (", auth_protocol: SHA-512", "snmp.auth_protocol", "write 'sha512'"),
    (", priv_protocol: AES-256-C", "snmp.priv_protocol", "write 'aes256c'"),
    (", priv_protocol: aes512", "snmp.priv_protocol", "'aes128', 'aes192', 'aes256'"),
])
def test_a_protocol_not_offered_is_refused_naming_the_key_and_what_to_write(
        tmp_path, protocols, key, reason):
    with pytest.raises(ConfigError) as refused:
        load(with_sections(tmp_path, snmp_section(162, protocols=protocols)))
    found = [str(p) for p in refused.value.problems]
    assert len(found) == 1 and key in found[0] and reason in found[0], found


def test_a_file_without_the_protocols_keeps_its_configuration_hash(tmp_path):
    """The hash the DCS reads and the settings changed in service are kept under: the same
    for a file written before the protocols could be chosen, another once they are."""
    from softrelay.modbus.regmap import config_hash

    plain = load(with_sections(tmp_path, snmp_section(162)))
    explicit = load(with_sections(tmp_path, snmp_section(
        162, protocols=", auth_protocol: sha, priv_protocol: aes128")))
    strong = load(with_sections(tmp_path, snmp_section(
        162, protocols=", auth_protocol: sha512, priv_protocol: aes256")))
    assert "_protocol" not in plain.model_dump_json()
    assert config_hash(plain) == config_hash(explicit) != config_hash(strong)
    assert '"auth_protocol":"sha512","priv_protocol":"aes256"' in strong.model_dump_json()
    for config in (plain, strong):  # as the helper processes receive it
        assert type(config).model_validate_json(config.model_dump_json()) == config
