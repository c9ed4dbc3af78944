"""The DCS's side of a running relay's Modbus/TCP slave, for the tests.

``make_relay`` builds the demo relay with a slave on a free port of 127.0.0.1 and two access
levels (``OPERATOR``, ``CODE``); ``Running`` scans it in a thread so the slave serves what a
DCS would read; ``raw``/``mbap`` speak the wire directly, ``send_code`` unlocks a session,
``f32`` decodes a float the way the map says (big-endian words, high word first).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from gpiozero.pins.mock import MockFactory
from pymodbus.client import ModbusTcpClient

from softrelay.config import load
from softrelay.relay.relay import Relay

from support.configs import DEMO

CODE = 987654  #: the engineer's (level 2)


OPERATOR = 4321  #: the operator's (level 1)


ACCESS = f"""access:
  operator: {{code: {OPERATOR}}}
  engineer: {{code: {CODE}}}
  minutes: 1
"""


SLAVE = f"""modbus:
  host: 127.0.0.1
  port: 0
  units: [1]
  max_connections: 3
  idle_timeout: 1.0
  frame_timeout: 0.3

{ACCESS}
"""


def make_relay(tmp_path, slave: str = SLAVE, extra: tuple[str, str] | None = None) -> Relay:
    """The demo relay, its Modbus and access sections replaced by ``slave`` (and ``extra``:
    one more (old, new) replacement)."""
    start = DEMO.index("\nmodbus:") + 1
    end = DEMO.index("\nplant:", start) + 1
    top = [line.split(":")[0] for line in DEMO[start:end].splitlines() if line[:1].isalpha()]
    assert top == ["modbus", "access"], top
    text = (DEMO[:start] + slave + DEMO[end:]).replace(  # the state in tmp_path
        "\nstate:\n", f"\nstate:\n  dir: {tmp_path}\n").replace(
        "port: 9650", "port: 0")  # the metrics: any free port
    if extra is not None:
        assert extra[0] in text
        text = text.replace(extra[0], extra[1], 1)
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return Relay(load(path), str(path), factory=MockFactory())


class Running:
    """A relay scanning in a thread (no companion: its inputs stay stale), its slave serving."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.stop = threading.Event()
        relay.start(companion=False)
        self.thread = threading.Thread(target=relay.run, args=(lambda: not self.stop.is_set(),))
        self.thread.start()
        self.port = relay.slave.port if relay.slave is not None else None
        self.scans(2)  # an image is published before anyone asks

    def close(self) -> None:
        """Stop the scan thread (joined within 5 s) and the relay."""
        self.stop.set()
        self.thread.join(5.0)
        self.relay.stop()

    def scans(self, n: int = 3) -> None:
        """Wait until n more scans have run (queued writes are applied by then)."""
        target = self.relay.loop.stats.scans + n
        deadline = time.monotonic() + 5.0
        while self.relay.loop.stats.scans < target:
            assert time.monotonic() < deadline, "the scan stopped"
            time.sleep(0.005)


def raw(port: int, frame: bytes, timeout: float = 1.0) -> bytes:
    """Send ``frame`` on a new connection to 127.0.0.1:``port``; the first answer read (at
    most 300 bytes, within ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(frame)
        return s.recv(300)


def mbap(pdu: bytes, unit: int = 1, transaction: int = 7) -> bytes:
    """``pdu`` behind its MBAP header (protocol 0, the length counted by the specification)."""
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


def send_code(client: ModbusTcpClient, code: int, regmap) -> None:
    """Write an access code to relay.unlock on this connection (its session)."""
    answer = client.write_registers(regmap.get("relay.unlock").address,
                                    [code >> 16, code & 0xFFFF], device_id=1)
    assert not answer.isError(), answer


def f32(words) -> float:
    """Two registers (high word first) as the IEEE 754 float they hold."""
    return struct.unpack(">f", struct.pack(">HH", *words))[0]
