"""MQTT able to require TLS 1.3 (mqtt.tls.min_version): the relay's TLS refuses a server that
offers only TLS 1.2, and publishes to mosquitto that requires 1.3."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from softrelay.config.telemetry import MqttTls
from softrelay.telemetry.mqtt import tls_context

from support.broker import TOPIC, Broker, Subscriber, make_pki, make_relay


def tls(pki, version: str) -> str:
    return (f", tls: {{ca: {pki['ca']}, cert: {pki['client']}, key: {pki['client_key']}, "
            f"min_version: '{version}'}}")


def serve_tls_once(pki, maximum: ssl.TLSVersion) -> tuple[int, list]:
    """A TLS server on 127.0.0.1 that offers at most ``maximum`` (mosquitto's tls_version is
    a minimum: it cannot stand for an old broker); the handshake's outcome in the list."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = maximum
    context.load_cert_chain(str(pki["server"]), str(pki["server_key"]))
    listener = socket.create_server(("127.0.0.1", 0))
    outcome: list = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                outcome.append(tls.version())
        except (ssl.SSLError, OSError) as exc:
            outcome.append(exc)
        finally:
            listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], outcome


@pytest.mark.parametrize(("minimum", "maximum", "agreed"), [
    ("1.3", ssl.TLSVersion.TLSv1_2, None),  # an old broker: refused
    ("1.2", ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
    ("1.3", ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_the_relays_tls_refuses_anything_older_than_its_minimum(tmp_path, minimum, maximum,
                                                                 agreed):
    pki = make_pki(tmp_path)
    port, outcome = serve_tls_once(pki, maximum)
    config = MqttTls(ca=pki["ca"], cert=pki["client"], key=pki["client_key"],
                     min_version=minimum)
    context = tls_context(config)
    with socket.create_connection(("127.0.0.1", port), 5.0) as raw:
        if agreed is None:
            with pytest.raises(ssl.SSLError, match=r"(?i)protocol version|unsupported"):
                context.wrap_socket(raw, server_hostname="127.0.0.1")
        else:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == agreed
    deadline = time.monotonic() + 5.0
    while not outcome:  # the server's side of the same handshake
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert (outcome[0] == agreed) if agreed else isinstance(outcome[0], OSError)


@pytest.mark.e2e
def test_a_relay_that_requires_tls_1_3_publishes_to_a_broker_of_tls_1_3(tmp_path):
    pki = make_pki(tmp_path)
    broker = Broker(tmp_path, pki=pki, extra=("tls_version tlsv1.3",)).start()
    try:
        sub = Subscriber(broker, TOPIC)
        relay = make_relay(tmp_path, broker, tls(pki, "1.3"))
        try:
            relay.start(companion=False)
            sub.wait_for(lambda: sub.of("status"), 20.0, "status over TLS 1.3")
        finally:
            relay.stop()
        sub.close()
    finally:
        broker.stop()
