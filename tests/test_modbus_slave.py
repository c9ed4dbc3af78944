"""The Modbus/TCP slave of a running relay, over real TCP on 127.0.0.1: pymodbus's client and
pyModbusTCP (an independent implementation) read and write it; raw sockets check the frame
rules and the connection limits; the compiled reads answer what the specification module does."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient
from pyModbusTCP.client import ModbusClient

from softrelay.config import load
from softrelay.modbus.pdu import SlaveLogic
from softrelay.modbus.register_image import register_image
from softrelay.modbus.regmap import MAP_VERSION
from softrelay.relay.relay import Relay

from support.configs import DEMO
from support.modbus import CODE, OPERATOR, SLAVE, Running, f32, make_relay, mbap, raw, send_code

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not



def test_pymodbus_reads_the_map(modbus_relay):
    regmap = modbus_relay.relay.regmap
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as client:
        version = client.read_input_registers(0, count=6, device_id=1)
        assert not version.isError()
        assert version.registers[0] == MAP_VERSION
        assert version.registers[1:4] == [0, 1, 0]  # softrelay 0.1.0
        assert version.registers[4] << 16 | version.registers[5] == regmap.config_hash
        i_b = client.read_holding_registers(regmap.get("motor1.i_b").address, count=2,
                                            device_id=1)
        assert f32(i_b.registers) == 100.0
        faults = client.read_discrete_inputs(regmap.get("motor1.trip", "discrete_input")
                                             .address, count=10, device_id=1)
        assert faults.bits[7]  # input_fault: no companion, the currents are stale
        coils = client.read_coils(regmap.get("motor1.reset").address, count=2, device_id=1)
        assert coils.bits[:2] == [False, False]
        refused = client.read_input_registers(96, count=1, device_id=1)
        assert refused.isError() and refused.exception_code == 2
        summary = client.read_holding_registers(regmap.get("motor1.status",
                                                           "holding_register").address,
                                                count=12, device_id=1).registers
        flags = client.read_input_registers(regmap.get("motor1.flags", "input_register")
                                            .address, count=2, device_id=1).registers
        assert summary[2:4] == flags  # the summary's flag word is the point's
        assert summary[10:12] == client.read_input_registers(
            regmap.get("bus1.flags", "input_register").address, count=2,
            device_id=1).registers


def test_a_multi_register_read_is_one_scans(modbus_relay):
    """scans and heartbeat are written by every scan: a response mixing two scans would
    show them disagreeing. Reads for 0.6 s (thousands) while the relay scans every 10 ms."""
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as client:
        seen, reads, until = set(), 0, time.monotonic() + 0.6
        while time.monotonic() < until or reads < 2000:
            reads += 1
            r = client.read_input_registers(6, count=3, device_id=1).registers
            scans = r[0] << 16 | r[1]
            assert r[2] == scans % 65536, r
            seen.add(scans)
    assert len(seen) > 20  # the reads did span many scans


def test_the_dcs_clears_the_scan_statistics_after_commissioning(modbus_relay):
    """A stall during commissioning stays in the lateness max and the overrun count until the
    DCS writes relay.clear_statistics: then they start again at the next scan (recorded as an
    event), and the scan counter goes on."""
    regmap = modbus_relay.relay.regmap
    stats = modbus_relay.relay.loop.stats
    stats.lateness.record(80_000_000)  # an 80 ms wake-up, as a stalled machine gives
    stats.overruns += 3
    address = {name: regmap.get(f"relay.{name}").address
               for name in ("scans", "overruns", "lateness_max")}
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as client:

        def read(name: str) -> float:
            words = client.read_input_registers(address[name], count=2, device_id=1).registers
            return f32(words) if name == "lateness_max" else words[0] << 16 | words[1]

        modbus_relay.scans(60)  # the percentiles are worked out every 50 scans
        assert read("overruns") >= 3 and read("lateness_max") >= 80_000
        before = read("scans")
        clear = regmap.get("relay.clear_statistics").address
        refused = client.write_coil(clear, True, device_id=1)  # level 0: the evidence stays
        assert refused.isError() and refused.exception_code == 1
        send_code(client, CODE, regmap)
        assert not client.write_coil(clear, True, device_id=1).isError()
        modbus_relay.scans()
        assert read("overruns") == 0
        assert read("lateness_max") < 80_000
        assert read("scans") > before
    assert any(e.kind == "command" and e.source == "scan" and "statistics cleared from modbus"
               in e.text for e in modbus_relay.relay.events.ring)


def test_pymodbustcp_an_independent_client_reads_and_writes(modbus_relay):
    regmap = modbus_relay.relay.regmap
    client = ModbusClient(host="127.0.0.1", port=modbus_relay.port, unit_id=1, auto_open=True,
                          timeout=2.0)
    try:
        words = client.read_holding_registers(regmap.get("motor1.theta_trip").address, 2)
        assert f32(words) == pytest.approx(1.2)
        assert not client.write_single_coil(regmap.get("relay.reset_all").address, True)
        assert client.last_except == 1  # no code sent on this connection: refused
        unlock = regmap.get("relay.unlock").address
        assert client.write_multiple_registers(unlock, [OPERATOR >> 16, OPERATOR & 0xFFFF])
        assert client.write_single_coil(regmap.get("relay.reset_all").address, True)
        modbus_relay.scans()
        assert any(e.kind == "command" and e.source == "reset all"
                   for e in modbus_relay.relay.events.ring)
        assert client.read_input_registers(96, 1) is None
        assert client.last_except == 2
        # settings: refused at level 1 (01), then at level 2 written and read back
        k2 = regmap.get("motor1.k2").address
        four = list(struct.unpack(">HH", struct.pack(">f", 4.0)))
        assert not client.write_multiple_registers(k2, four)
        assert client.last_except == 1
        assert client.write_multiple_registers(unlock, [CODE >> 16, CODE & 0xFFFF])
        assert client.write_multiple_registers(k2, four)
        modbus_relay.scans()
        assert f32(client.read_holding_registers(k2, 2)) == 4.0
        assert modbus_relay.relay.core.thermal_settings["k2"][0] == 4.0
        assert client.read_input_registers(regmap.get("relay.unlocked", "input_register")
                                           .address, 1) == [1]
    finally:
        client.close()
    texts = [e.text for e in modbus_relay.relay.events.ring]
    assert any("level 2 engineer granted to 127.0.0.1:" in t for t in texts)
    assert any("k2 3.0 -> 4.0" in t and "level 2 engineer" in t for t in texts)
    assert not any(str(CODE) in t or str(OPERATOR) in t for t in texts)  # never recorded


@pytest.mark.parametrize(
    ("pdu", "unit", "answer"),
    [
        (bytes([0x07]), 1, bytes([0x87, 1])),  # unsupported function
        (struct.pack(">BHH", 4, 96, 1), 1, bytes([0x84, 2])),  # unmapped
        (struct.pack(">BHH", 3, 100, 126), 1, bytes([0x83, 3])),  # over 125 registers
        (struct.pack(">BHH", 4, 6, 2), 9, bytes([0x84, 0x0B])),  # a unit not served
        (struct.pack(">BHH", 5, 0, 0x1234), 1, bytes([0x85, 3])),  # a coil value
    ],
)
def test_exceptions_on_the_wire(modbus_relay, pdu, unit, answer):
    reply = raw(modbus_relay.port, mbap(pdu, unit))
    assert reply == struct.pack(">HHHB", 7, 0, len(answer) + 1, unit) + answer


def test_pipelined_requests_are_answered_in_order(modbus_relay):
    frames = b"".join(mbap(struct.pack(">BHH", 4, 0, 1), transaction=t) for t in range(1, 6))
    frames += mbap(struct.pack(">BHH", 5, 0, 0xFF00), transaction=6)  # a write between reads
    frames += mbap(struct.pack(">BHH", 4, 0, 1), transaction=7)
    with socket.create_connection(("127.0.0.1", modbus_relay.port), 2.0) as s:
        s.sendall(frames)
        got = b""
        while got.count(b"\x00\x00\x00") < 7 and len(got) < 7 * 12:
            chunk = s.recv(1000)
            assert chunk
            got += chunk
    transactions = []
    while got:
        length = struct.unpack(">H", got[4:6])[0]
        transactions.append(struct.unpack(">H", got[:2])[0])
        got = got[6 + length:]
    assert transactions == [1, 2, 3, 4, 5, 6, 7]


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock``, or None if it stayed open."""
    sock.settimeout(seconds)
    start = time.monotonic()
    try:
        data = sock.recv(100)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return time.monotonic() - start
    return time.monotonic() - start if data == b"" else None


def test_connection_limits_idle_and_half_frames_and_bad_headers(modbus_relay):
    port = modbus_relay.port
    held = []
    for k in range(3):  # from three addresses (each may hold 2 of the 3)
        held.append(socket.create_connection(("127.0.0.1", port), 1.0,
                                             source_address=(f"127.0.0.{2 + k}", 0)))
        time.sleep(0.02)  # held[0] is the longest idle
    try:
        extra = socket.create_connection(("127.0.0.1", port), 1.0,
                                         source_address=("127.0.0.9", 0))
        extra.sendall(mbap(struct.pack(">BHH", 4, 0, 1)))
        assert len(extra.recv(300)) == 11  # the newcomer is served ...
        assert closed_within(held[0], 1.0) is not None  # ... the longest idle made room
        extra.close()
        deadline = time.monotonic() + 2.0
        while modbus_relay.relay.slave.server.connections != 2:  # what systemd's STATUS shows
            assert time.monotonic() < deadline, modbus_relay.relay.slave.server.connections
            time.sleep(0.01)
    finally:
        for s in held:
            s.close()
    time.sleep(0.1)
    assert modbus_relay.relay.slave.server.connections == 0
    half = socket.create_connection(("127.0.0.1", port), 1.0)
    half.sendall(mbap(struct.pack(">BHH", 4, 0, 1))[:9])
    took = closed_within(half, 2.0)
    assert took is not None and 0.2 < took < 0.8  # frame_timeout 0.3 s
    half.close()
    idle = socket.create_connection(("127.0.0.1", port), 1.0)
    took = closed_within(idle, 3.0)
    assert took is not None and 0.8 < took < 1.6  # idle_timeout 1 s
    idle.close()
    bad = socket.create_connection(("127.0.0.1", port), 1.0)
    bad.sendall(struct.pack(">HHHB", 1, 5, 6, 1) + struct.pack(">BHH", 4, 0, 1))  # protocol 5
    assert closed_within(bad, 1.0) is not None
    bad.close()
    server = modbus_relay.relay.slave.server  # its thread publishes the counts after closing
    deadline = time.monotonic() + 5.0
    while server.counters["dropped"] < 2:
        assert time.monotonic() < deadline, server.counters
        time.sleep(0.01)
    assert server.counters["evicted"] >= 1 and server.counters["dropped"] >= 2


def test_the_allowlist_refuses_other_networks(tmp_path):
    allow = SLAVE.replace("  units: [1]\n", "  units: [1]\n  allow: [10.0.0.0/8]\n")
    r = Running(make_relay(tmp_path, allow))
    try:
        s = socket.create_connection(("127.0.0.1", r.port), 1.0)
        assert closed_within(s, 1.0) is not None
        s.close()
        # counted by the server's thread when it publishes its counters: maybe just after
        deadline = time.monotonic() + 5.0
        while r.relay.slave.server.counters["refused"] < 1:
            assert time.monotonic() < deadline, r.relay.slave.server.counters
            time.sleep(0.01)
        assert r.relay.slave.server.counters["refused"] == 1
    finally:
        r.close()


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    """A started relay that does not scan: a fixed image for comparing answers."""
    relay = make_relay(tmp_path_factory.mktemp("still"))
    relay.start(companion=False)
    for _ in range(3):
        relay.loop.step()
    image = {t: words.copy() for t, words in register_image(relay.snapshot.read()).items()}
    yield relay, image
    relay.stop()


@given(st.sampled_from([1, 2, 3, 4]), st.integers(0, 4500), st.integers(0, 130),
       st.binary(max_size=3))
@settings(max_examples=400, deadline=None)
def test_compiled_reads_answer_as_the_specification(still, function, start, count, tail):
    relay, image = still
    logic = SlaveLogic(relay.regmap)
    pdu = struct.pack(">BHH", function, start, count) + tail
    assert relay.slave.server.read_pdu(pdu) == logic.respond(pdu, image, writes=None)


@given(st.sampled_from([1, 2, 3, 4, 43]), st.binary(max_size=7))
@settings(max_examples=300, deadline=None)
def test_compiled_reads_of_any_bytes_answer_as_the_specification(still, function, data):
    relay, image = still
    logic = SlaveLogic(relay.regmap)
    pdu = bytes([function]) + data
    assert relay.slave.server.read_pdu(pdu) == logic.respond(pdu, image, writes=None)


def test_device_identification_over_the_wire(modbus_relay):
    reply = raw(modbus_relay.port, mbap(bytes([43, 0x0E, 1, 0])))
    assert reply[7:14] == bytes([43, 0x0E, 1, 0x82, 0, 0, 3])
    assert b"softrelay" in reply and np.frombuffer(reply[4:6], ">u2")[0] == len(reply) - 6


def mbpoll(port: int, *args: str, write: tuple[str, ...] = ()) -> str:
    """Run mbpoll (libmodbus, from Debian) once against the slave (writing ``write``); its
    output."""
    import shutil
    import subprocess

    if shutil.which("mbpoll") is None:
        pytest.fail("mbpoll is required: `make test` installs it (apt-get install mbpoll)")
    run = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-1",
                          "-o", "2", *args, "127.0.0.1", *write], capture_output=True, text=True,
                         timeout=20)
    return run.stdout + run.stderr


def test_mbpoll_reads_floats_and_its_reset_without_a_code_is_refused(modbus_relay):
    regmap = modbus_relay.relay.regmap
    theta_trip = regmap.get("motor1.theta_trip").address
    out = mbpoll(modbus_relay.port, "-t", "4:float", "-B", "-r", str(theta_trip), "-c", "1")
    assert f"[{theta_trip}]: \t1.2" in out, out
    out = mbpoll(modbus_relay.port, "-t", "3:hex", "-r", "0", "-c", "4")
    assert f"[0]: \t0x{MAP_VERSION:04x}" in out and "[1]: \t0x0000" in out, out  # map, 0.
    out = mbpoll(modbus_relay.port, "-t", "3", "-r", "96", "-c", "1")
    assert "Illegal data address" in out, out
    out = mbpoll(modbus_relay.port, "-t", "0", "-r", str(regmap.get("motor1.reset").address),
                 write=("1",))  # a connection of its own that never sent a code
    assert "Illegal function" in out, out
    modbus_relay.scans()
    assert not any(e.kind == "command" and e.source == "reset motor1"
                   for e in modbus_relay.relay.events.ring)
    assert any("write refused: reset needs level 1 operator, the session has level 0 read "
               "(from 127.0.0.1:" in e.text for e in modbus_relay.relay.events.ring)


def fuzz_frames(rng: np.random.Generator, n: int, hot: list[int]):
    """(frame, pdu, unit) of well-formed MBAP frames around mapped addresses (``hot``), their
    PDUs random, mutated valid requests, or valid requests of every function."""
    for t in range(n):
        kind = rng.random()
        function = int(rng.choice([1, 2, 3, 4, 5, 6, 15, 16, 23, 43, 7, 8, 0, 0x80, 255]))
        start = int(rng.choice(hot)) + int(rng.integers(-3, 4)) if rng.random() < 0.8 else int(
            rng.integers(0, 65536))
        start %= 65536
        count = int(rng.choice([0, 1, 2, 10, 100, 125, 126, 2000, 2001, 65535]))
        if kind < 0.45:  # a valid-looking request
            if function in (1, 2, 3, 4):
                pdu = struct.pack(">BHH", function, start, count)
            elif function in (5, 6):
                pdu = struct.pack(">BHH", function, start, int(rng.choice([0, 0xFF00, 7])))
            elif function in (15, 16):
                q = min(count, 123) or 1
                body = rng.bytes(2 * q if function == 16 else (q + 7) // 8)
                pdu = struct.pack(">BHHB", function, start, q, len(body)) + body
            elif function == 23:
                pdu = struct.pack(">BHHHHB", 23, start, min(count, 125), start, 2, 4) + bytes(4)
            else:
                pdu = bytes([function, 0x0E, int(rng.integers(0, 6)), int(rng.integers(0, 8))])
        elif kind < 0.75:  # a valid request, mutated
            pdu = bytearray(struct.pack(">BHH", function, start, count))
            for _ in range(int(rng.integers(1, 4))):
                pdu[int(rng.integers(0, len(pdu)))] = int(rng.integers(0, 256))
            pdu = bytes(pdu[:int(rng.integers(1, len(pdu) + 1))])
        else:  # random bytes
            pdu = rng.bytes(int(rng.integers(1, 40)))
        unit = 1 if rng.random() < 0.9 else int(rng.integers(0, 256))
        yield struct.pack(">HHHB", t & 0xFFFF, 0, len(pdu) + 1, unit) + pdu, pdu, unit


def read_answers(sock: socket.socket, count: int) -> list[bytes]:
    buffer, answers = b"", []
    while len(answers) < count:
        while len(buffer) < 6 or len(buffer) < 6 + struct.unpack(">H", buffer[4:6])[0]:
            chunk = sock.recv(65536)
            assert chunk, "the server closed a connection that sent well-formed frames"
            buffer += chunk
        size = 6 + struct.unpack(">H", buffer[4:6])[0]
        answers.append(buffer[:size])
        buffer = buffer[size:]
    return answers


def test_fuzz_100000_frames_the_server_answers_by_the_specification(modbus_relay):
    """100 000 well-formed frames with random, mutated and valid PDUs (pipelined 100 at a
    time), then malformed headers on their own connections: every
    well-formed frame is answered, exceptions are those the specification module gives, the
    server stays up, and the scan keeps its period."""
    relay = modbus_relay.relay
    logic = SlaveLogic(relay.regmap)
    rng = np.random.default_rng(20261121)
    hot = sorted({e.address for e in relay.regmap.entries})
    frames = list(fuzz_frames(rng, 100_000, hot))
    started, scans0 = time.monotonic(), relay.loop.stats.scans
    checked = 0
    with socket.create_connection(("127.0.0.1", modbus_relay.port), 5.0) as sock:
        for k in range(0, len(frames), 100):
            batch = frames[k:k + 100]
            sock.sendall(b"".join(f for f, _, _ in batch))
            answers = read_answers(sock, len(batch))
            image = register_image(relay.snapshot.read())
            for (frame, pdu, unit), answer in zip(batch, answers, strict=True):
                assert answer[:2] == frame[:2] and answer[6] == unit  # its transaction, unit
                got = answer[7:]
                if unit != 1:
                    assert got == bytes([pdu[0] | 0x80, 0x0B])
                elif pdu[0] in (1, 2, 3, 4, 43):
                    want = logic.respond(pdu, image, writes=None)
                    assert (got == want) if want[0] & 0x80 else (
                        got[0] == want[0] and len(got) == len(want)), (pdu, got, want)
                    checked += 1
                else:
                    assert got[0] in (pdu[0], pdu[0] | 0x80)
                    if got[0] & 0x80:
                        assert len(got) == 2 and got[1] in (1, 2, 3, 4)
    # malformed headers (a protocol other than 0, a length outside 2..254): dropped unanswered
    for k in range(200):
        with socket.create_connection(("127.0.0.1", modbus_relay.port), 2.0) as sock:
            length = int(rng.choice([0, 1, 255, 300, 65535]))
            protocol = 0 if length in (255, 300, 65535, 0, 1) and k % 2 else int(
                rng.integers(1, 65536))
            sock.sendall(struct.pack(">HHHB", k, protocol, length, 1) + rng.bytes(5))
            assert closed_within(sock, 2.0) is not None
    elapsed, scans = time.monotonic() - started, relay.loop.stats.scans - scans0
    assert checked > 15_000  # read PDUs compared with the specification module
    assert scans >= 0.5 * elapsed / relay.config.scan.period, (scans, elapsed)
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as client:
        assert not client.read_input_registers(0, count=1, device_id=1).isError()


def window(client: ModbusTcpClient, regmap) -> list[dict]:
    first = regmap.get("relay.event0_seq").address
    words = client.read_input_registers(first, count=56, device_id=1).registers
    rows = []
    for k in range(8):
        w = words[7 * k:7 * k + 7]
        if w[0] << 16 | w[1]:
            rows.append({"seq": w[0] << 16 | w[1], "time": w[2] << 16 | w[3], "ms": w[4],
                         "kind": w[5], "source": w[6]})
    return rows


def test_events_are_read_through_the_window_without_losing_one(modbus_relay):
    """Twenty commands make twenty events; the DCS walks the window from an old cursor to
    the newest, writing back the last number it read, and sees every event once, in order,
    with the kinds and sources the map's tables name."""
    relay, regmap = modbus_relay.relay, modbus_relay.relay.regmap
    kinds, sources = json.loads(regmap.to_json())["event_kinds"], regmap.event_sources
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as client:
        send_code(client, OPERATOR, regmap)
        start = relay.events.next_seq - 1
        reset = regmap.get("motor1.reset").address
        for _ in range(20):
            client.write_coil(reset, True, device_id=1)
        modbus_relay.scans(3)
        # cursor 0: the newest 8, as of the last scan's snapshot: other threads (the watchdog,
        # the write worker) may record events meanwhile, so wait (bounded) for a scan that has
        # published the recorder's newest
        deadline = time.monotonic() + 5.0
        while (newest := window(client, regmap))[-1]["seq"] != relay.events.next_seq - 1:
            assert time.monotonic() < deadline, (newest[-1], relay.events.next_seq - 1)
            modbus_relay.scans(1)
        assert len(newest) == 8
        cursor, seen = regmap.get("relay.event_cursor").address, []
        client.write_registers(cursor, [start >> 16, start & 0xFFFF], device_id=1)
        while True:
            modbus_relay.scans(2)
            rows = window(client, regmap)
            if not rows:
                break
            seen += rows
            last = rows[-1]["seq"]
            client.write_registers(cursor, [last >> 16, last & 0xFFFF], device_id=1)
        read_back = client.read_holding_registers(cursor, count=2, device_id=1).registers
    numbers = [row["seq"] for row in seen]
    assert numbers == list(range(start + 1, start + 1 + len(numbers)))  # every one, once
    assert len(numbers) >= 20 and read_back == [numbers[-1] >> 16, numbers[-1] & 0xFFFF]
    by_seq = {e.seq: e for e in relay.events.ring}
    for row in seen:
        event = by_seq[row["seq"]]
        assert kinds[row["kind"]] == event.kind
        assert sources[row["source"]] == event.source or row["source"] == 0
        assert abs(row["time"] + row["ms"] / 1000 - event.wall) < 0.002
    commands = [row for row in seen if kinds[row["kind"]] == "command"]
    assert len(commands) == 20 and {sources[r["source"]] for r in commands} == {"reset motor1"}


def test_settings_changed_over_modbus_survive_a_restart_until_the_file_changes(tmp_path):
    relay = make_relay(tmp_path)
    r = Running(relay)
    try:
        regmap = relay.regmap
        client = ModbusClient(host="127.0.0.1", port=r.port, unit_id=1, auto_open=True)
        unlock = regmap.get("relay.unlock").address
        assert client.write_multiple_registers(unlock, [CODE >> 16, CODE & 0xFFFF])
        k2 = regmap.get("motor1.k2").address
        assert client.write_multiple_registers(k2, list(struct.unpack(">HH", struct.pack(
            ">f", 4.5))))
        client.close()
        r.scans(3)
    finally:
        r.close()
    kept = tmp_path / "demo-state.settings.json"
    assert kept.exists() and json.loads(kept.read_text())["payload"]["points"]["motor1"][
        "k2"] == 4.5
    again = make_relay(tmp_path)  # the same file: the change is restored
    try:
        assert again.core.thermal_settings["k2"][0] == 4.5
        assert again.settings.current["motor1"].k2 == 4.5
        assert any("restored: k2 3.0 -> 4.5" in e.text for e in again.events.ring)
    finally:
        again.start(companion=False)
        again.stop()
    path = tmp_path / "relay.yaml"
    path.write_text(path.read_text().replace("k2: 3.0", "k2: 3.5"))  # the engineer edits
    edited = Relay(load(path), str(path), factory=MockFactory())
    try:
        assert edited.core.thermal_settings["k2"][0] == 3.5  # the file wins
        assert any("dropped: the configuration file changed" in e.text
                   for e in edited.events.ring)
    finally:
        edited.start(companion=False)
        edited.stop()
    assert json.loads(kept.read_text())["payload"]["points"] == {}  # nothing kept any more


def test_unit_groups_show_their_points_as_relays_of_their_own(tmp_path):
    """Unit 2 shows motor2 and unit 3 bus1, each from the first block (one template for every
    motor); unit 1 the whole map; any other unit: exception 0x0B."""
    slave = SLAVE.replace("  units: [1]\n", "  units: [1]\n  groups: {2: [motor2], 3: [bus1]}\n")
    r = Running(make_relay(tmp_path, slave))
    try:
        whole = r.relay.regmap
        with ModbusTcpClient("127.0.0.1", port=r.port, timeout=2) as client:
            def ir(address, count, unit):
                return client.read_input_registers(address, count=count, device_id=unit)

            first = r.relay.maps["mb2_"].get("motor2.theta").address
            assert first == whole.get("motor1.theta").address  # the first block
            r.scans(2)
            assert ir(first, 2, 2).registers == ir(whole.get("motor2.theta").address, 2,
                                                   1).registers
            level = r.relay.maps["mb3_"].get("bus1.level_a").address
            assert level == first
            assert ir(level, 2, 3).registers == ir(whole.get("bus1.level_a").address, 2,
                                                   1).registers
            assert ir(first + 48, 2, 2).exception_code == 2  # unit 2 has one point
            assert ir(0, 1, 4).exception_code == 0x0B  # no such unit
            reset = r.relay.maps["mb2_"].get("motor2.reset").address
            send_code(client, OPERATOR, whole)  # the connection's level, on any unit
            assert not client.write_coil(reset, True, device_id=2).isError()
        r.scans()
        assert any(e.kind == "command" and e.source == "reset motor2"
                   for e in r.relay.events.ring)
    finally:
        r.close()
    from support.configs import problems_of

    bad = DEMO.replace("modbus:", "modbus:\n  groups: {2: [motor9]}", 1)
    assert any("modbus.groups[2][0]: no point named 'motor9'" in p for p in problems_of(bad))


def test_softrelay_status_reads_a_running_relay_through_its_map(modbus_relay, tmp_path):
    """What an engineer types beside the panel: the points' figures and the scan's, read over
    Modbus; a relay running another configuration is called out; no relay: exit 1, why."""
    from softrelay.relay.commands import Request

    modbus_relay.relay.commands.put(Request("preset", ("motor1",), 0.5, "test"))
    modbus_relay.scans()
    config = modbus_relay.relay.config_path

    def status(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "softrelay", "status", *argv],
                              capture_output=True, text=True, timeout=60)

    shown = status(f"127.0.0.1:{modbus_relay.port}", "--config", config)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    motor1 = next(line for line in lines if line.startswith("motor1 "))
    assert float(motor1.split()[1]) == pytest.approx(0.5, abs=1e-3)
    assert "input_fault" in motor1  # no companion in this test: its currents are stale
    assert any(line.startswith("bus1 ") for line in lines)
    # no companion: every point is blind, and the relay says so (measurement lost)
    assert "NOT HEALTHY; scan 10 ms," in shown.stdout and "NOT this file" not in shown.stdout
    blind = sum(line.split()[:1] in (["motor1"], ["motor2"], ["bus1"])
                and "measurement_lost" in line for line in lines)
    assert blind and f"measurement lost on {blind} point(s)" in shown.stdout, shown.stdout
    other = tmp_path / "other.yaml"
    other.write_text(Path(config).read_text().replace("t_heat: ", "t_heat: 1", 1))
    assert "NOT this file's" in status(f"127.0.0.1:{modbus_relay.port}", "--config",
                                       str(other)).stdout
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        nobody = spare.getsockname()[1]
    refused = status(f"127.0.0.1:{nobody}", "--config", config)
    assert refused.returncode == 1
    assert f"no relay answers at 127.0.0.1:{nobody}" in refused.stderr


def status_of(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softrelay", "status", *argv],
                          capture_output=True, text=True, timeout=60)


def test_softrelay_status_without_a_config_shows_what_the_relay_says(modbus_relay, tmp_path):
    """HOST:PORT alone: the relay's own globals and summary, its points by number (their
    kinds told apart), and where the names are; localhost is accepted."""
    from softrelay.relay.commands import Request

    modbus_relay.relay.commands.put(Request("preset", ("motor1",), 0.5, "test"))
    modbus_relay.scans()
    shown = status_of(f"localhost:{modbus_relay.port}")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    text = shown.stdout
    assert (f"map {MAP_VERSION}, configuration 0x{modbus_relay.relay.regmap.config_hash:08x}, "
            "3 point(s)") in text
    assert "--config FILE gives names and full figures" in text
    assert "NOT HEALTHY; scan 10 ms," in text  # no companion: blind, and said so
    rows = {line.split()[1]: line.split() for line in text.splitlines()
            if line.startswith("point ") and line.split()[1].isdigit()}
    assert [rows[k][2] for k in ("0", "1", "2")] == ["thermal", "thermal", "busbar"]
    assert rows["0"][3:5] == ["theta", "0.500"] and "input_fault," in rows["0"]
    assert rows["2"][3] == "rise"
    assert "motor1" not in text  # the names are the configuration's


def test_softrelay_status_with_a_config_of_another_layout_falls_back_to_the_relays(modbus_relay,
                                                                                   tmp_path):
    """A file with one point more (its block 3 is unmapped on this relay): not an exception
    response, but the relay's own view, and the file named as not its configuration."""
    other = tmp_path / "other.yaml"
    text = Path(modbus_relay.relay.config_path).read_text()
    other.write_text(text.replace("\noutputs:", "\n  - name: motor3\n    kind: thermal\n"
                                  "    samples: m2.win\n    settings: {i_b: 50.0, t_heat: 120.0,"
                                  " t_cool: 360.0, input_mode: samples}\n\noutputs:", 1))
    shown = status_of(f"127.0.0.1:{modbus_relay.port}", "--config", str(other))
    assert shown.returncode == 0, shown.stderr
    assert f"is NOT {other}'s" in shown.stdout and "layout does not fit" in shown.stdout
    assert "point 2" in shown.stdout and "point 3" not in shown.stdout


def test_softrelay_status_says_when_the_relays_map_version_is_not_its_own(modbus_relay):
    modbus_relay.relay.publisher.providers[0].relay["map_version"] = MAP_VERSION + 1
    modbus_relay.scans()
    shown = status_of(f"127.0.0.1:{modbus_relay.port}")
    assert shown.returncode == 0, shown.stderr
    assert (f"map {MAP_VERSION + 1} is newer than this softrelay's {MAP_VERSION}"
            in shown.stdout), shown.stdout


def test_softrelay_status_of_a_port_where_nothing_listens_is_one_line():
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        nobody = spare.getsockname()[1]
    refused = status_of(f"127.0.0.1:{nobody}")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [f"status: no relay answers at 127.0.0.1:{nobody}"]
    assert refused.stdout == ""


def test_softrelay_status_watch_refreshes_until_ctrl_c(modbus_relay):
    """--watch: the figures move as the relay's do; Ctrl-C ends it cleanly."""
    from softrelay.relay.commands import Request

    modbus_relay.relay.commands.put(Request("preset", ("motor1",), 0.5, "test"))
    modbus_relay.scans()
    watch = subprocess.Popen([sys.executable, "-m", "softrelay", "status",
                              f"127.0.0.1:{modbus_relay.port}", "--config",
                              modbus_relay.relay.config_path, "--watch", "0.2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONFAULTHANDLER="1"),
                             # as from a terminal: a suite started in the background (a
                             # non-interactive shell's `&`) passes SIGINT on ignored, and
                             # Python then never turns Ctrl-C into KeyboardInterrupt
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []

    def thetas() -> list[float]:
        return [float(line.split()[1]) for line in lines if line.startswith("motor1 ")]

    reader = threading.Thread(target=lambda: lines.extend(watch.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30.0
    while not thetas() and time.monotonic() < deadline:
        time.sleep(0.05)
    modbus_relay.relay.commands.put(Request("preset", ("motor1",), 0.8, "test"))
    while (not thetas() or thetas()[-1] < 0.79) and time.monotonic() < deadline:
        time.sleep(0.05)
    watch.send_signal(signal.SIGINT)
    try:
        code = watch.wait(30.0)
    except subprocess.TimeoutExpired:  # say where it hangs (faulthandler: every thread)
        watch.send_signal(signal.SIGABRT)
        watch.wait(10.0)
        stacks = watch.stderr.read()
        raise AssertionError(f"Ctrl-C did not end the watch in 30 s: {stacks}") from None
    assert code == 0, watch.stderr.read()
    reader.join(5.0)
    seen = thetas()
    assert seen[0] == pytest.approx(0.5, abs=1e-3) and seen[-1] == pytest.approx(0.8, abs=1e-3)
    assert "Traceback" not in watch.stderr.read()
