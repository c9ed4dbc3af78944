"""Modbus/TCP Security (modbus.tls): a real relay's TLS port on 127.0.0.1, certificates made
here (a CA; an engineer's, an operator's, one without a role, one with a role the relay does
not know, one from another CA), and two clients: Python's ssl module speaking raw MBAP frames
(the independent client) and pymodbus's ModbusTlsClient.

The role travels in the certificate's extension 1.3.6.1.4.1.50316.802.1 as an ASN.1
UTF8String (MB-TCP-Security R-21/R-22; rodbus and the Modbus Organization's examples say the
same): the relay maps it to an access level by ``modbus.tls.roles``."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pymodbus.client import ModbusTlsClient

from support.modbus import ACCESS, Running, f32, make_relay
from support.waits import wait_for

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

ROLE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.50316.802.1")
ROLES = "{engineer: 2, operator: 1}"


# ---------------------------------------------------------------- certificates


def utf8string(text: str) -> bytes:
    data = text.encode()
    if len(data) < 128:
        return bytes([0x0C, len(data)]) + data
    return bytes([0x0C, 0x82]) + len(data).to_bytes(2, "big") + data


def certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool = False,
                role: str | None = None, server: bool = False,
                valid: tuple[float, float] = (-300.0, 86400.0)) -> bytes:
    """A certificate; ``valid``: its notBefore and notAfter, in s from now."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(seconds=valid[0]))
               .not_valid_after(now + datetime.timedelta(seconds=valid[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    if role is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(ROLE_OID, utf8string(role)),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 128 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + content


def _oid(dotted: str) -> bytes:
    """The DER content of an OBJECT IDENTIFIER (its tag and length, 06 nn, before it)."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return bytes([6, len(out)]) + out


def _element(der: bytes, at: int) -> int:
    """Where the DER element at ``at`` ends."""
    n, start = der[at + 1], at + 2
    if n & 0x80:
        k = n & 0x7F
        n, start = int.from_bytes(der[start:start + k], "big"), start + k
    return start + n


def twice_roled(subject: str, key, issuer: str, issuer_key, roles: tuple[str, str]) -> bytes:
    """A client certificate (DER) with two role extensions, which no builder makes: made
    with the second under another OID, that OID patched to the role's and the TBS signed
    again."""
    decoy = x509.ObjectIdentifier("1.3.6.1.4.1.50316.802.9")
    pem = certificate(subject, key, issuer, issuer_key, role=roles[0])
    cert = x509.load_pem_x509_certificate(pem)
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
               .public_key(cert.public_key()).serial_number(cert.serial_number)
               .not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_after_utc))
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    builder = builder.add_extension(x509.UnrecognizedExtension(decoy, utf8string(roles[1])),
                                    critical=False)
    der = builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    assert _element(der, 0) == len(der)
    start = 4 if der[1] == 0x82 else 2
    tbs_end = _element(der, start)
    algorithm_end = _element(der, tbs_end)
    tbs = der[start:tbs_end].replace(_oid(decoy.dotted_string), _oid(ROLE_OID.dotted_string))
    assert tbs != der[start:tbs_end], "the decoy OID was not found"
    signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _tlv(0x30, tbs + der[tbs_end:algorithm_end] + _tlv(0x03, b"\x00" + signature))


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(directory: Path) -> dict[str, tuple[Path, Path] | Path]:
    """``ca``; (cert, key) pairs: ``server``, ``engineer`` (CN dcs1), ``operator`` (CN hmi1),
    ``norole`` (CN historian), ``guest`` (role 'guest', not mapped), ``stranger`` (role
    engineer, signed by another CA)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    (directory / "ca.pem").write_bytes(certificate("plant CA", ca_key, "plant CA", ca_key,
                                                   ca=True))
    pki: dict = {"ca": directory / "ca.pem"}
    for name, cn, role, issuer in (("server", "relay1", None, "plant"),
                                   ("engineer", "dcs1", "engineer", "plant"),
                                   ("operator", "hmi1", "operator", "plant"),
                                   ("norole", "historian", None, "plant"),
                                   ("guest", "visitor", "guest", "plant"),
                                   ("stranger", "dcs1", "engineer", "other")):
        key = ec.generate_private_key(ec.SECP256R1())
        signer = (("plant CA", ca_key) if issuer == "plant" else ("other CA", other_key))
        pem = certificate(cn, key, signer[0], signer[1], role=role, server=name == "server")
        (directory / f"{name}.pem").write_bytes(pem)
        (directory / f"{name}.key").write_bytes(key_pem(key))
        (directory / f"{name}.key").chmod(0o600)  # as the relay requires
        pki[name] = (directory / f"{name}.pem", directory / f"{name}.key")
    return pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_section(pki, min_version: str = "1.2", roles: str = ROLES) -> str:
    cert, key = pki["server"]
    return (f"  tls: {{port: 0, cert: {cert}, key: {key}, ca: {pki['ca']}, "
            f"min_version: '{min_version}', roles: {roles}}}\n")


def slave_text(pki, **tls) -> str:
    return ("modbus:\n  host: 127.0.0.1\n  port: 0\n  units: [1]\n  max_connections: 8\n"
            "  idle_timeout: 30.0\n  frame_timeout: 1.0\n" + tls_section(pki, **tls)
            + "\n" + ACCESS)


def start(tmp_path, pki, **tls) -> Running:
    return Running(make_relay(tmp_path, slave_text(pki, **tls)))


@pytest.fixture
def running(tmp_path, pki):
    r = start(tmp_path, pki)
    yield r
    r.close()


# ---------------------------------------------------------------- clients


def client_context(pki, name: str | None, maximum: ssl.TLSVersion | None = None
                   ) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # the relay's certificate is checked
    context.load_verify_locations(cafile=str(pki["ca"]))
    if maximum is not None:
        context.maximum_version = maximum
    if name is not None:
        cert, key = pki[name]
        context.load_cert_chain(str(cert), str(key))
    return context


def connect(pki, port: int, name: str | None, maximum=None, timeout: float = 5.0,
            source: str | None = None) -> ssl.SSLSocket:
    """A TLS client (``source``: another loopback address to come from, another peer)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                   source_address=None if source is None else (source, 0))
    return client_context(pki, name, maximum).wrap_socket(raw, server_hostname="127.0.0.1")


def receive(sock: ssl.SSLSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        got = sock.recv(n - len(data))
        if not got:
            raise ConnectionError("closed by the relay")
        data += got
    return data


def ask(sock: ssl.SSLSocket, pdu: bytes, transaction: int = 1) -> bytes:
    """One MBAP request over TLS; the response PDU."""
    sock.sendall(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, 1) + pdu)
    header = receive(sock, 7)
    tid, protocol, length, unit = struct.unpack(">HHHB", header)
    assert (tid, protocol, unit) == (transaction, 0, 1)
    return receive(sock, length - 1)


def write_float(address: int, value: float) -> bytes:
    return struct.pack(">BHHB", 0x10, address, 2, 4) + struct.pack(">f", value)


def write_coil(address: int) -> bytes:
    return struct.pack(">BHH", 0x05, address, 0xFF00)


def read_inputs(address: int, count: int) -> bytes:
    return struct.pack(">BHH", 0x04, address, count)


def texts(running: Running) -> list[str]:
    return [e.text for e in running.relay.events.ring]


def label(sock: ssl.SSLSocket, cn: str, role: str) -> str:
    return f"tls:CN={cn}({role})@127.0.0.1:{sock.getsockname()[1]}"


# ---------------------------------------------------------------- tests


def test_an_engineer_certificate_presets_theta_and_the_event_names_its_cn_and_role(running,
                                                                                  pki):
    """Python's ssl, raw MBAP frames: the engineer's role gives level 2 without any code."""
    regmap, relay = running.relay.regmap, running.relay
    port = relay.slave.tls_port
    assert port and port != running.port  # a port of its own, beside the plain one
    theta = regmap.get("motor1.theta").address
    with connect(pki, port, "engineer") as sock:
        assert sock.version() == "TLSv1.3"  # preferred when both offer it
        answer = ask(sock, write_float(regmap.get("motor1.preset_theta").address, 0.5))
        assert answer[0] == 0x10, answer.hex()  # not an exception
        who = label(sock, "dcs1", "engineer")
        running.scans()
        words = ask(sock, read_inputs(theta, 2), transaction=2)
        assert words[:2] == bytes([0x04, 4])
        assert abs(f32(struct.unpack(">HH", words[2:6])) - 0.5) < 0.01  # preset, read back
    (preset,) = [e for e in relay.events.ring if e.source == "preset motor1"]
    assert preset.text.startswith(f"from modbus {who}, level 2 engineer; theta "), preset.text
    assert preset.text.endswith(" -> 0.5"), preset.text
    assert any(f"TLS client {who} connected: level 2 engineer by its role 'engineer'" in t
               for t in texts(running))


def test_an_operator_resets_but_its_preset_is_refused_with_exception_01(running, pki):
    """pymodbus's TLS client: the operator's role gives level 1, reset but not preset."""
    regmap, relay = running.relay.regmap, running.relay
    context = client_context(pki, "operator")
    context.check_hostname = False  # pymodbus wraps without a server name; the CA still checks
    with ModbusTlsClient("127.0.0.1", port=relay.slave.tls_port, sslctx=context,
                         timeout=3, retries=0) as client:
        assert client.connected
        reset = client.write_coil(regmap.get("motor1.reset").address, True, device_id=1)
        assert not reset.isError(), reset
        refused = client.write_registers(regmap.get("motor1.preset_theta").address,
                                         list(struct.unpack(">HH", struct.pack(">f", 0.0))),
                                         device_id=1)
        assert refused.isError() and refused.exception_code == 1
        who = f"tls:CN=hmi1(operator)@127.0.0.1:{client.socket.getsockname()[1]}"
        running.scans()
    assert any(e.source == "reset motor1" and f"from modbus {who}, level 1 operator" in e.text
               for e in relay.events.ring)
    assert not any(e.source == "preset motor1" for e in relay.events.ring)
    wait_for(lambda: any(who in t and "preset needs level 2 engineer, the session has "
                         "level 1 operator" in t for t in texts(running)),
             what="the refused preset's event")


@pytest.mark.parametrize(("name", "cn", "role", "why"), [
    ("norole", "historian", "no role", "its certificate has no role (extension "
     "1.3.6.1.4.1.50316.802.1)"),
    ("guest", "visitor", "guest", "its role 'guest' is not in modbus.tls.roles"),
])
def test_a_certificate_without_a_known_role_reads_but_cannot_write(running, pki, name, cn,
                                                                   role, why):
    regmap = running.relay.regmap
    with connect(pki, running.relay.slave.tls_port, name) as sock:
        version = ask(sock, read_inputs(0, 1))
        assert version[:2] == bytes([0x04, 2])  # it reads the map
        refused = ask(sock, write_coil(regmap.get("motor1.reset").address), transaction=2)
        assert refused == bytes([0x85, 0x01])  # exception 01: no authority
        who = label(sock, cn, role)
    wait_for(lambda: any(f"TLS client {who} reads only (level 0 read): {why}" in t
                         for t in texts(running)), what="the read-only event")
    assert running.relay.slave.tls.counters["read_only"] == 1


def refused_by_the_relay(pki, port: int, name: str | None, maximum=None) -> bool:
    """Whether the relay refuses this client: its handshake fails, or (TLS 1.3: the server
    checks the client's certificate after the client's handshake is done) its first request
    ends in an alert or a closed connection."""
    try:
        with connect(pki, port, name, maximum) as sock:
            ask(sock, read_inputs(0, 1))
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False


def test_handshakes_without_a_certificate_from_another_ca_or_too_old_are_refused(tmp_path,
                                                                                 pki):
    running = start(tmp_path, pki, min_version="1.3")
    try:
        tls = running.relay.slave.tls
        port = tls.port
        assert not refused_by_the_relay(pki, port, "engineer")  # 1.3 is served
        cases = [(None, None, "it sent no client certificate"),
                 ("stranger", None, "its certificate is not signed by modbus.tls.ca"),
                 ("engineer", ssl.TLSVersion.TLSv1_2, "it offers no TLS version from 1.3 up")]
        for name, maximum, why in cases:
            assert refused_by_the_relay(pki, port, name, maximum), (name, maximum)
            wait_for(lambda why=why: any(f"TLS handshake refused on port {port}: {why}" in t
                                         for t in texts(running))
                     or any(why in t and "more refused" in t for t in texts(running)),
                     what=why)
        with socket.create_connection(("127.0.0.1", port), timeout=5.0) as plain:
            plain.sendall(struct.pack(">HHHB", 1, 0, 6, 1) + read_inputs(0, 1))
            answer = plain.recv(64)
            assert not answer or answer[0] == 0x15, answer  # closed, or a TLS alert record
        wait_for(lambda: any(f"TLS handshake refused on port {port}: it does not speak TLS"
                             in t for t in texts(running)), what="plain Modbus on the TLS port")
        wait_for(lambda: tls.counters["handshake_failures"] == 4, what="4 failures counted")
        assert tls.counters["adopted"] == 1  # only the engineer was served
    finally:
        running.close()


def test_closing_the_tls_connection_drops_the_session(running, pki):
    relay = running.relay
    authority = relay.authority
    with connect(pki, relay.slave.tls_port, "engineer") as sock:
        ask(sock, write_coil(relay.regmap.get("motor1.reset").address))
        who = label(sock, "dcs1", "engineer")
        assert authority.sessions == 1 and authority.engineer_held
        wait_for(lambda: relay.slave.server.connections == 1, what="served")
    wait_for(lambda: relay.slave.server.connections == 0, what="the connection closed")
    wait_for(lambda: authority.sessions == 0 and not authority.engineer_held,
             what="the session dropped")
    wait_for(lambda: any(f"level 2 engineer of {who} (its certificate) ended: connection "
                         "closed" in t for t in texts(running)), what="the end's event")
    wait_for(lambda: not relay.slave.tls._identities, what="its identity forgotten")


def test_the_plain_port_stays_beside_the_tls_port(running):
    """A site that fronts the plain port with its own TLS terminator keeps it."""
    with socket.create_connection(("127.0.0.1", running.port), timeout=2) as plain:
        plain.sendall(struct.pack(">HHHB", 9, 0, 6, 1) + read_inputs(0, 1))
        assert plain.recv(64)[7:9] == bytes([0x04, 2])


def test_a_certificate_with_two_role_extensions_reads_only_and_says_why():
    from softrelay.modbus.tls import read_certificate

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    der = twice_roled("dcs1", key, "plant CA", ca_key, ("operator", "engineer"))
    with pytest.raises(x509.DuplicateExtension):  # what the library does with it
        _ = x509.load_der_x509_certificate(der).extensions
    got = read_certificate(der)
    assert (got.cn, got.role) == ("dcs1", None)
    assert "several role extensions" in got.problem


class OwnCa:
    """A CA of a test's own (make_pki keeps no CA key), trusted beside the plant CA."""

    def __init__(self, directory: Path, pki) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        ca = certificate("test CA", self.key, "test CA", self.key, ca=True)
        (directory / "test-ca.pem").write_bytes(ca)
        (directory / "both.pem").write_bytes(pki["ca"].read_bytes() + ca)
        self.pki = dict(pki, ca=directory / "both.pem")

    def issue(self, name: str, cn: str, role: str | None, **options) -> None:
        """A client certificate, in ``self.pki[name]``."""
        key = ec.generate_private_key(ec.SECP256R1())
        (self.directory / f"{name}.pem").write_bytes(
            certificate(cn, key, "test CA", self.key, role=role, **options))
        (self.directory / f"{name}.key").write_bytes(key_pem(key))
        self.pki[name] = (self.directory / f"{name}.pem", self.directory / f"{name}.key")


def test_a_role_too_long_for_the_channel_reads_only_with_a_reason(tmp_path, pki):
    """A role of 4090 characters: its message would not fit the channel."""
    own = OwnCa(tmp_path, pki)
    own.issue("long", "dcs9", "e" * 4090)
    mine = own.pki
    running = start(tmp_path, mine)
    try:
        with connect(mine, running.relay.slave.tls_port, "long") as sock:
            assert ask(sock, read_inputs(0, 1))[:2] == bytes([0x04, 2])  # it reads
            refused = ask(sock, write_coil(running.relay.regmap.get("motor1.reset").address),
                          transaction=2)
            assert refused == bytes([0x85, 0x01])
        wait_for(lambda: any("reads only (level 0 read): its role is 4090 characters long"
                             in t for t in texts(running)), what="the read-only event")
    finally:
        running.close()


@pytest.mark.parametrize(("valid", "why"), [
    ((-7200.0, -3600.0), "its certificate has expired: issue it a new one"),
    ((3600.0, 7200.0), "its certificate is not valid yet"),
])
def test_a_certificate_out_of_its_dates_is_refused_for_that_reason(tmp_path, pki, valid, why):
    own = OwnCa(tmp_path, pki)
    own.issue("dated", "dcs1", "engineer", valid=valid)
    running = start(tmp_path, own.pki)
    try:
        port = running.relay.slave.tls_port
        assert refused_by_the_relay(own.pki, port, "dated")
        wait_for(lambda: any(f"TLS handshake refused on port {port}: {why}" in t
                             for t in texts(running)), what=why)
    finally:
        running.close()


def revocation_list(own: OwnCa, revoked: list[str], next_update: float = 86400.0) -> Path:
    """The test CA's CRL (PEM) revoking the certificates ``own.pki[name]``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
               .last_update(now - datetime.timedelta(minutes=5))
               .next_update(now + datetime.timedelta(seconds=next_update)))
    for name in revoked:
        cert = x509.load_pem_x509_certificate(own.pki[name][0].read_bytes())
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=1)).build())
    path = own.directory / "crl.pem"
    path.write_bytes(builder.sign(own.key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM))
    return path


def test_a_revoked_certificate_is_refused_when_a_crl_is_given(tmp_path, pki):
    own = OwnCa(tmp_path, pki)
    own.issue("revoked", "dcs1", "engineer")
    own.issue("good", "dcs2", "engineer")
    crl = revocation_list(own, ["revoked"])
    cert, key = pki["server"]
    ca = own.directory / "test-ca.pem"  # the test CA only: its CRL is the one given
    text = slave_text(pki).replace(
        tls_section(pki), f"  tls: {{port: 0, cert: {cert}, key: {key}, ca: {ca}, "
        f"crl: {crl}, roles: {ROLES}}}\n")
    running = Running(make_relay(tmp_path, text))
    try:
        port = running.relay.slave.tls_port
        served_within(own.pki, port, 3.0, "127.0.0.1", "good")  # not revoked
        assert refused_by_the_relay(own.pki, port, "revoked")
        wait_for(lambda: any(f"TLS handshake refused on port {port}: its certificate is "
                             "revoked" in t for t in texts(running)), what="the revoked event")
    finally:
        running.close()


def test_no_session_ticket_is_given_every_connection_shows_its_certificate(running, pki):
    with connect(pki, running.relay.slave.tls_port, "engineer") as sock:
        ask(sock, read_inputs(0, 1))  # TLS 1.3 tickets come after the handshake
        ask(sock, read_inputs(0, 1), transaction=2)
        assert sock.version() == "TLSv1.3"
        assert not sock.session.has_ticket


def test_lost_clients_alone_are_sent_without_inventing_a_failure():
    """The front's count of clients the channel could not take, sent when it can: as lost
    clients, not as a handshake failure (whose count would be 0 or -1)."""
    from softrelay.modbus.tls_front import Front

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener = socket.socket()
    with ours, theirs, listener:
        front = Front(None, None, listener, theirs, limit=4)
        front.lost = 2
        front._flush_failures()
        ours.settimeout(1.0)
        message = json.loads(ours.recv(4096))
        assert message.get("lost") == 2 and "handshake" not in message, message
        assert front.lost == 0 and front.unsent_failures == 0


# ---------------------------------------------------------------- the port against a flood


def idle(port: int, source: str) -> socket.socket:
    """A TCP connection to the TLS port that never starts its handshake."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5.0,
                                    source_address=(source, 0))
    return sock


def served_within(pki, port: int, seconds: float, source: str, name: str = "engineer"
                  ) -> float:
    """The engineer (from ``source``) reads the map; how long it took."""
    began = time.monotonic()
    with connect(pki, port, name, timeout=seconds, source=source) as sock:
        assert ask(sock, read_inputs(0, 1))[:2] == bytes([0x04, 2])
    took = time.monotonic() - began
    assert took < seconds, took
    return took


def test_idle_connections_from_one_address_do_not_lock_an_engineer_out(running, pki):
    """24 connections from 127.0.0.1 that never handshake: beyond max_per_peer (8 / 2 = 4)
    handshakes in progress, that address is closed on accept; an engineer from another
    address is served at once."""
    tls = running.relay.slave.tls
    flood = [idle(tls.port, "127.0.0.1") for _ in range(24)]
    try:
        served_within(pki, tls.port, 3.0, "127.0.0.2")
        wait_for(lambda: any("TLS handshake refused on port" in t and "127.0.0.1 already has 4 "
                             "handshakes in progress (max_per_peer)" in t
                             for t in texts(running)), what="the refusals' event")
        wait_for(lambda: tls.counters["handshake_failures"] >= 20, what="20 refusals counted")
    finally:
        for sock in flood:
            sock.close()


def test_a_full_front_closes_its_oldest_handshake_not_the_newcomer(running, pki):
    """26 idle connections from 26 addresses fill the front (max_connections + 16 = 24):
    the oldest handshakes are closed for the newcomers, and the engineer is served."""
    tls = running.relay.slave.tls
    flood = [idle(tls.port, f"127.0.0.{10 + k}") for k in range(26)]
    try:
        served_within(pki, tls.port, 3.0, "127.0.0.2")
        flood[0].settimeout(3.0)
        with contextlib.suppress(ConnectionError):
            assert flood[0].recv(10) == b""  # the oldest was closed (or reset)
        wait_for(lambda: any("its handshake was closed for a newcomer" in t
                             for t in texts(running)), what="the closed handshake's event")
    finally:
        for sock in flood:
            sock.close()


def test_an_address_outside_the_allowlist_is_closed_before_any_tls_byte(tmp_path, pki):
    text = slave_text(pki).replace("  frame_timeout: 1.0\n",
                                   "  frame_timeout: 1.0\n  allow: ['127.0.0.0/30']\n", 1)
    running = Running(make_relay(tmp_path, text))
    try:
        tls = running.relay.slave.tls
        outsider = idle(tls.port, "127.0.0.9")
        outsider.settimeout(2.0)
        with outsider, contextlib.suppress(ConnectionError):
            assert outsider.recv(10) == b""  # closed at once: no handshake started
        wait_for(lambda: any("127.0.0.9 is not in modbus.allow" in t for t in texts(running)),
                 what="the refusal's event")
        assert tls.counters["adopted"] == 0
        served_within(pki, tls.port, 3.0, "127.0.0.1")  # inside the allowlist: served
    finally:
        running.close()


# ---------------------------------------------------------------- check and run


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a config a subprocess reads)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_with(tmp_path, pki, tls: str, plain: int) -> Path:
    """The demo config, its modbus section: ``plain`` the plain port, then ``tls``."""
    from support.configs import DEMO

    start = DEMO.index("\nmodbus:") + 1
    end = DEMO.index("\naccess:", start) + 1
    text = DEMO[:start] + (f"modbus:\n  host: 127.0.0.1\n  port: {plain}\n" + tls + "\n") + \
        DEMO[end:]
    text = text.replace("\nstate:\n", f"\nstate:\n  dir: {tmp_path}\n").replace(
        "port: 9650", f"port: {free_port()}")  # the metrics
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return path


def softrelay(command: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softrelay", command, str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("case", "key", "words"), [
    ("another key", "modbus.tls.key", "is not the private key of"),
    ("a key open to others", "modbus.tls.key", "is open to its group or others (mode 0644)"),
    ("no CRL", "modbus.tls.crl", "holds no CRL in PEM"),
    ("no CA", "modbus.tls.ca", "holds no CA certificate"),
    ("missing cert", "modbus.tls.cert", "cannot read"),
    ("the plain port", "modbus.tls.port", "is modbus.port too"),
])
def test_check_and_run_refuse_a_tls_section_that_cannot_serve(tmp_path, pki, case, key, words):
    cert, server_key = pki["server"]
    other_key = pki["engineer"][1]
    plain = free_port()
    fields = {"port": free_port(), "cert": cert, "key": server_key, "ca": pki["ca"]}
    if case == "another key":
        fields["key"] = other_key
    elif case == "no CRL":
        fields["crl"] = pki["ca"]  # a certificate, not a CRL
    elif case == "a key open to others":
        fields["key"] = tmp_path / "open.key"
        fields["key"].write_bytes(server_key.read_bytes())
        fields["key"].chmod(0o644)
    elif case == "no CA":
        fields["ca"] = server_key  # a key, not a certificate
    elif case == "missing cert":
        fields["cert"] = tmp_path / "absent.pem"
    else:
        fields["port"] = plain
    tls = "  tls: {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"
    path = config_with(tmp_path, pki, tls, plain)
    tls_line = path.read_text().splitlines().index(tls) + 1
    for command in ("check", "run"):
        result = softrelay(command, path)
        assert result.returncode != 0, result.stdout + result.stderr
        output = result.stdout + result.stderr
        assert "Traceback" not in output
        lines = [line for line in output.splitlines() if key in line]
        assert len(lines) == 1, output
        assert lines[0].startswith(f"{path}:{tls_line}: {key}: ") and words in lines[0], output


def test_check_accepts_a_tls_section_that_serves_and_prints_it(tmp_path, pki):
    cert, key = pki["server"]
    port = free_port()
    path = config_with(tmp_path, pki, f"  tls: {{port: {port}, cert: {cert}, key: {key}, ca: "
                                      f"{pki['ca']}, roles: {ROLES}}}", free_port())
    result = softrelay("check", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"modbus TLS (Modbus/TCP Security): 127.0.0.1:{port}, TLS 1.2+" in result.stdout
            and "'engineer' -> level 2" in result.stdout), result.stdout


# ---------------------------------------------------------------- TLS only; a dead front


def test_modbus_port_null_serves_tls_only(tmp_path, pki):
    text = slave_text(pki).replace("  port: 0\n  units", "  port: null\n  units", 1)
    running = Running(make_relay(tmp_path, text))
    try:
        assert running.relay.slave.port == 0  # nothing listens in plain
        with connect(pki, running.relay.slave.tls_port, "engineer") as sock:
            assert ask(sock, read_inputs(0, 1))[:2] == bytes([0x04, 2])
        assert any("slave on 127.0.0.1:(no plain port), Modbus/TCP Security (TLS) on port "
                   f"{running.relay.slave.tls_port}" in t for t in texts(running))
    finally:
        running.close()


def test_a_dead_front_is_recorded_and_started_again_on_the_same_port(running, pki):
    tls = running.relay.slave.tls
    port = tls.port
    front = tls._front
    front.kill()
    front.join(5.0)
    wait_for(lambda: any("the Modbus TLS front exited (code -9): TLS clients on port "
                         f"{port} are cut off; starting it again" in t
                         for t in texts(running)), 15.0, "the front's death recorded")
    wait_for(lambda: tls.front_alive and tls._front is not front, 30.0, "a new front")
    served_within(pki, port, 5.0, "127.0.0.1")  # the same port, served again
    assert tls.counters["front_restarts"] == 1


# ---------------------------------------------------------------- the channel's bad messages


def test_a_truncated_connect_is_counted_not_adopted_and_its_client_closed(running, pki):
    """A connect whose message was truncated, or whose descriptors were cut (MSG_CTRUNC: 5
    sent, 4 taken), is not adopted: counted, an event, every descriptor closed."""
    tls = running.relay.slave.tls
    long_message = b'{"connect": {"cn": "x", "role": "' + b"e" * 5000 + b'"}}'
    pairs = [socket.socketpair() for _ in range(6)]
    for ours, _ in pairs:
        ours.settimeout(3.0)
    socket.send_fds(tls._front_end, [long_message], [pairs[0][1].fileno()])
    short = b'{"connect": {"cn": "y", "role": null, "address": "127.0.0.1", "port": 1}}'
    socket.send_fds(tls._front_end, [short], [theirs.fileno() for _, theirs in pairs[1:]])
    for _, theirs in pairs:
        theirs.close()  # ours was sent: the relay's copies remain
    for ours, _ in pairs:
        assert ours.recv(10) == b""  # the relay closed every descriptor it got
        ours.close()
    wait_for(lambda: tls.counters["not_adopted"] == 2, what="2 not adopted")
    wait_for(lambda: any("TLS client not served: the front's message was dropped" in t
                         for t in texts(running)), what="the event")
    assert tls.counters["adopted"] == 0
    served_within(pki, tls.port, 3.0, "127.0.0.1")


@pytest.mark.parametrize("message", [
    b"5", b"[1, 2]", b'{"handshake": "x", "more": "many"}', b"\xff\xfe",
])
def test_a_malformed_message_is_dropped_with_an_event_and_the_port_serves_on(running, pki,
                                                                            message):
    tls = running.relay.slave.tls
    tls._front_end.send(message)  # before the engineer's connect: handled first
    served_within(pki, tls.port, 3.0, "127.0.0.1")
    assert tls._thread.is_alive() and tls.front_alive
    wait_for(lambda: any("a message from the Modbus TLS front dropped" in t
                         for t in texts(running)), what="the dropped message's event")


def test_a_connect_with_a_role_not_text_is_dropped_and_the_port_serves_on(running, pki):
    tls = running.relay.slave.tls
    ours, theirs = socket.socketpair()
    ours.settimeout(3.0)
    message = b'{"connect": {"cn": "z", "role": ["engineer"], "address": "127.0.0.1", "port": 2}}'
    socket.send_fds(tls._front_end, [message], [theirs.fileno()])
    theirs.close()
    with ours:
        assert ours.recv(10) == b""  # not served: closed
    wait_for(lambda: any("a connect of no known form (TypeError" in t for t in texts(running)),
             what="the dropped connect's event")
    assert tls.counters["not_adopted"] == 1
    served_within(pki, tls.port, 3.0, "127.0.0.1")


# ---------------------------------------------------------------- the compiled server's adoption


def adopting_server(**options):
    from softrelay._mbserver import ModbusServer

    from support.mbserver import Image

    image = Image()
    server = ModbusServer(image.region, image.images, [0] * 256, b"\x00\x04test", None,
                          **options)
    server.start()
    return server


def adopt(server, address: str, port: int, label: str) -> tuple[socket.socket, int]:
    ours, theirs = socket.socketpair()
    generation = server.adopt(theirs.detach(), address, port, label)
    ours.settimeout(2.0)
    return ours, generation


def mbap_frame(pdu: bytes, transaction: int = 7) -> bytes:
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, 1) + pdu


def test_an_adopted_connection_is_served_and_its_writes_name_its_label():
    server = adopting_server(max_conn=4, idle_timeout=5.0, frame_timeout=0.5)
    try:
        assert server.port == 0  # no port of its own
        who = "tls:CN=dcs1(engineer)@10.0.0.5:50312"
        sock, generation = adopt(server, "10.0.0.5", 50312, who)
        sock.sendall(mbap_frame(struct.pack(">BHH", 3, 4, 2)))
        assert sock.recv(300) == mbap_frame(bytes([3, 4, 0, 4, 0, 5]))  # word i = i
        sock.sendall(mbap_frame(bytes([6, 0, 10, 0, 42]), transaction=8))
        slot, got, frame, peer = server.next_write(2.0)
        assert (got, peer) == (generation, who)
        assert server.adopted_slot(generation) == slot and server.is_open(slot, generation)
        server.complete(slot, generation, frame[:7], frame[7:])
        assert sock.recv(300) == frame
        sock.close()
        wait_for(lambda: server.adopted_slot(generation) == -2, what="gone when closed")
        assert server.counters["adopted"] == 1
    finally:
        server.stop()


def test_the_allowlist_and_the_per_peer_limit_hold_for_adopted_connections():
    allowed = adopting_server(max_conn=4, idle_timeout=5.0, frame_timeout=0.5,
                              allow=[(0x7F000000, 0xFF000000)])  # 127.0.0.0/8
    try:
        sock, generation = adopt(allowed, "10.0.0.5", 1, "tls:outsider")
        assert sock.recv(10) == b""  # refused: closed
        # listed as waiting (-1) until the network thread has finished the batch it was
        # refused in, which a loaded machine may preempt just after the close: then gone
        wait_for(lambda: allowed.adopted_slot(generation) == -2, what="the refused one gone")
        wait_for(lambda: allowed.counters["refused"] == 1, what="the refusal counted")
        assert allowed.counters["adopted"] == 0
    finally:
        allowed.stop()
    limited = adopting_server(max_conn=4, max_per_peer=2, idle_timeout=5.0, frame_timeout=0.5)
    try:
        first = adopt(limited, "10.0.0.5", 1, "tls:a")[0]
        wait_for(lambda: limited.connections == 1, what="the first placed")
        second = adopt(limited, "10.0.0.5", 2, "tls:2")[0]
        wait_for(lambda: limited.connections == 2, what="the second placed")
        second.sendall(mbap_frame(struct.pack(">BHH", 3, 0, 1)))  # active after the first:
        assert len(second.recv(300)) == 11  # the first is the longest idle
        others = [second, adopt(limited, "10.0.0.5", 3, "tls:3")[0]]
        assert first.recv(10) == b""  # evicted for the third from its address
        wait_for(lambda: limited.counters["evicted"] == 1, what="one evicted")
        for sock in others:
            sock.sendall(mbap_frame(struct.pack(">BHH", 3, 0, 1)))
            assert len(sock.recv(300)) == 11
    finally:
        limited.stop()


def test_refusals_of_a_full_adoption_queue_are_counted_and_never_uncounted():
    """sr_adopt refuses (EAGAIN) beyond MAX_ADOPT waiting; those refusals stay in ``refused``
    when the network thread publishes its own counters afterwards."""
    from softrelay._mbserver import MAX_ADOPT, ModbusServer

    from support.mbserver import Image

    image = Image()
    server = ModbusServer(image.region, image.images, [0] * 256, b"\x00\x04test", None,
                          max_conn=MAX_ADOPT + 4, max_per_peer=MAX_ADOPT + 4,
                          idle_timeout=5.0, frame_timeout=0.5)
    clients = []
    try:  # not started yet: nothing drains the queue
        for k in range(MAX_ADOPT):
            clients.append(adopt(server, "127.0.0.1", k + 1, f"tls:{k}")[0])
        for k in range(3):
            ours, theirs = socket.socketpair()
            clients.append(ours)
            with pytest.raises(OSError):
                server.adopt(theirs.detach(), "127.0.0.1", 100 + k, "tls:over")
        assert server.counters["refused"] == 3
        server.start()  # places the queue, publishes its counters
        wait_for(lambda: server.connections == MAX_ADOPT, what="the queue placed")
        seen = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # publishes happen meanwhile: never below 3
            seen.append(server.counters["refused"])
            time.sleep(0.01)
        assert min(seen) == 3, seen
    finally:
        for sock in clients:
            sock.close()
        server.stop()
