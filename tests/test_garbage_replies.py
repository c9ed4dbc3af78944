"""Garbage from a field device is counted, not a traceback per reply (issue 14, item 5).

A gateway on 127.0.0.1 answers every request with a frame pymodbus cannot decode (the unit id
right, the function code unknown), as a confused gateway or a noisy line does. pymodbus
raises inside asyncio's protocol callback, which asyncio logs with a traceback per reply; the
relay's master instead logs one line at the first, and one counted line per bus per minute."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import pytest

from softrelay.config.buses import ModbusTcpBus
from softrelay.field.modbus import poller as master_poller
from softrelay.field.modbus.master import tcp_link
from softrelay.field.modbus.poller import ModbusPoller
from softrelay.field.worker import Polled


class GarbageGateway:
    """A Modbus TCP server whose every answer is MBAP + unit + an undecodable PDU."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.replies = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    header = conn.recv(7)
                    if len(header) < 7:
                        return
                    tid, _, length, unit = struct.unpack(">HHHB", header)
                    conn.recv(length - 1)
                    pdu = bytes([0x63, 2, 0, 0])  # function code 0x63: no such function
                    conn.sendall(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
                    self.replies += 1
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured():
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.e2e
def test_garbage_replies_are_one_counted_line_per_bus_never_a_traceback(captured):
    gateway = GarbageGateway()
    bus = ModbusTcpBus.model_validate({
        "name": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": gateway.port,
        "timeout": 0.1, "max_backoff": 0.1,
        "devices": [{"name": "meter", "unit": 1, "profile": "sdm630"}]})
    poller = ModbusPoller([(tcp_link(bus), [Polled(0, "meter.current.a", 0.05)])],
                          lambda *batch: None)
    poller.start()
    try:
        deadline = time.monotonic() + 30.0
        while gateway.replies < 10:
            assert time.monotonic() < deadline, f"{gateway.replies} replies in 30 s"
            time.sleep(0.05)
        schedule = poller.links[0][1]
        down, reason = schedule.down, schedule.reason
    finally:
        poller.stop()
        gateway.close()
    text = [logging.Formatter().format(r) for r in captured.records]
    assert not [t for t in text if "Traceback" in t], "\n".join(text)
    assert not [r for r in captured.records
                if r.name == "asyncio" and r.levelno >= logging.WARNING], "\n".join(text)
    about = [r.getMessage() for r in captured.records if "garbage repl" in r.getMessage()]
    # within a minute: the first at once, then the count at the end
    assert len(about) == 2, about
    assert about[0].startswith("gw1: a garbage reply (")
    counted = about[1]
    assert counted.startswith("gw1: ") and " garbage replies in the last " in counted
    assert int(counted.split()[1]) + 1 == poller.garbage.total["gw1"] >= 9
    assert down and reason.startswith("garbage: "), reason  # the link-down event's reason


def test_the_count_is_one_line_per_window_and_a_quiet_window_ends_it(captured):
    now = [0.0]
    garbage = master_poller.GarbageLog(every=60.0, clock=lambda: now[0])
    for _ in range(37):  # one a second: the first logged, 36 counted
        garbage.record("gw1", "bad frame")
        now[0] += 1.0
    garbage.record("gw2", "other")
    now[0] = 61.0
    garbage.flush()
    now[0] = 130.0
    garbage.flush()  # gw1 quiet for a window: its count ends; gw2's window ends with none
    garbage.record("gw1", "again")
    lines = [r.getMessage() for r in captured.records if r.name == "softrelay.modbus"]
    assert lines == [
        "gw1: a garbage reply (bad frame); more are counted, one line every 60 s",
        "gw2: a garbage reply (other); more are counted, one line every 60 s",
        "gw1: 36 garbage replies in the last 61 s (last: bad frame)",
        "gw1: a garbage reply (again); more are counted, one line every 60 s",
    ]
