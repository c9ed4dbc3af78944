"""A real mosquitto broker on 127.0.0.1 for the tests (plain or TLS), certificates made on the
spot, a subscriber that collects what the relay publishes, and the fast relay publishing to
the broker (``make_relay``: built, not started; ``TOPIC`` is its base topic)."""

from __future__ import annotations

import datetime
import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gpiozero.pins.mock import MockFactory

from softrelay.config import load
from softrelay.relay.relay import Relay

from support.ports import free_port
from support.scrape import with_sections


def mosquitto_program() -> str:
    found = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
    assert found, "mosquitto is not installed: `make test` installs it (apt-get install mosquitto)"
    return found


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: str, key, issuer: str, issuer_key, ca: bool,
                 ip: str | None = None) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip is not None:
        import ipaddress

        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, the broker's certificate for 127.0.0.1 and a client certificate, as PEM files."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    files = {"ca": _certificate("test CA", ca_key, "test CA", ca_key, ca=True)}
    for name, ip in (("server", "127.0.0.1"), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        files[name] = _certificate(name, key, "test CA", ca_key, ca=False, ip=ip)
        files[f"{name}_key"] = _key_pem(key)
    paths = {}
    for name, data in files.items():
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


class Broker:
    """mosquitto on 127.0.0.1:``port``; ``pki``: TLS with client certificates required."""

    def __init__(self, directory: Path, port: int | None = None,
                 pki: dict[str, Path] | None = None, extra: tuple[str, ...] = (),
                 persistent: bool = False) -> None:
        """``persistent``: the broker keeps its clients' sessions (and the messages queued
        for them) across a stop and a start, in ``directory``, as a plant's broker does."""
        self.directory = directory
        self.persistent = persistent
        self.extra = extra  #: more lines of mosquitto.conf (e.g. "tls_version tlsv1.2")
        self.port = port or free_port()
        self.pki = pki
        self.process: subprocess.Popen | None = None

    def start(self) -> Broker:
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 *(("persistence true", f"persistence_location {self.directory}/",
                    f"persistence_file mosquitto-{self.port}.db") if self.persistent
                   else ("persistence false",)),
                 f"user {getpass.getuser()}"]  # as root it would drop to 'mosquitto', who
        # cannot read the test's private directory
        if self.pki is not None:
            lines += [f"cafile {self.pki['ca']}", f"certfile {self.pki['server']}",
                      f"keyfile {self.pki['server_key']}", "require_certificate true",
                      *self.extra]
        conf = self.directory / f"mosquitto-{self.port}.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.log = open(self.directory / f"mosquitto-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen([mosquitto_program(), "-c", str(conf)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert self.process.poll() is None, (self.directory / f"mosquitto-"
                                                     f"{self.port}.log").read_text()
                time.sleep(0.05)
        raise AssertionError("mosquitto did not listen within 10 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5.0)
            self.process = None
            self.log.close()


class Subscriber:
    """Collects every message under ``topic/#`` (JSON payloads decoded)."""

    def __init__(self, broker: Broker, topic: str, session: str | None = None) -> None:
        """``session``: a client id whose session the broker keeps (clean_session off): a
        subscriber that comes back under it receives what was published while it was away."""
        self.messages: list[tuple[str, dict, bool]] = []  # (topic, payload, retained)
        self._lock = threading.Lock()
        self.ready = threading.Event()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id=session or f"test-{time.time()}",
                             clean_session=session is None)
        if broker.pki is not None:
            client.tls_set(ca_certs=str(broker.pki["ca"]), certfile=str(broker.pki["client"]),
                           keyfile=str(broker.pki["client_key"]))
        client.on_connect = lambda c, *_: c.subscribe(f"{topic}/#", qos=1)
        client.on_subscribe = lambda *_: self.ready.set()
        client.on_message = self._message
        client.connect("127.0.0.1", broker.port, 30)
        client.loop_start()
        assert self.ready.wait(10.0), "the test's subscriber did not subscribe"
        self.client = client

    def _message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload),
                                  bool(message.retain)))

    def of(self, leaf: str) -> list[dict]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith("/" + leaf)]

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: " + \
                f"{self.messages[-5:]}"
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


TOPIC = "softrelay/fast"


def mqtt_section(tmp_path, broker: Broker, extra: str = "") -> str:
    """The ``mqtt:`` section publishing to ``broker`` (telemetry every 0.2 s, the disk queue in
    ``tmp_path``), ``extra`` appended inside its braces."""
    return (f"\nmqtt: {{host: 127.0.0.1, port: {broker.port}, telemetry_every: 0.2, "
            f"queue: {{file: {tmp_path}/mqtt.sqlite}}{extra}}}\n")


def make_relay(tmp_path, broker: Broker, extra: str = "", more: str = "") -> Relay:
    """The fast relay (``support.scrape.with_sections``) publishing to ``broker``, with the
    sections ``more``; built on mock pins, not started (the test starts and stops it)."""
    path = with_sections(tmp_path, mqtt_section(tmp_path, broker, extra) + more)
    return Relay(load(path), str(path), factory=MockFactory())
