"""The compiled Modbus/TCP server (``softrelay._mbserver``) alone, as a hostile or careless peer
on the plant network would try it: over real TCP on 127.0.0.1, a server on a small register
image of its own (no relay), whose writes the test itself answers (``next_write`` /
``complete``) or leaves waiting."""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from softrelay import _mbserver

from support.mbserver import serve
from support.waits import wait_for

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

ROOT = Path(__file__).resolve().parent.parent
MAX_PENDING = getattr(_mbserver, "MAX_PENDING", 32)


@pytest.fixture
def server():
    s = serve(max_conn=16, idle_timeout=5.0, frame_timeout=0.5)
    yield s
    s.stop()


def mbap(pdu: bytes, unit: int = 1, transaction: int = 7) -> bytes:
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A client, from ``source`` (any of 127.0.0.0/8: another peer address)."""
    return socket.create_connection(("127.0.0.1", port), 2.0, source_address=(source, 0))


def read_request(start: int, count: int, transaction: int = 7) -> bytes:
    return mbap(struct.pack(">BHH", 3, start, count), transaction=transaction)


def words(start: int, count: int) -> bytes:
    """The test image's holding registers start..start+count (word i = i), on the wire."""
    return struct.pack(f">{count}H", *range(start, start + count))


def read_answers(sock: socket.socket, count: int) -> list[bytes]:
    buffer, answers = b"", []
    while len(answers) < count:
        while len(buffer) < 6 or len(buffer) < 6 + struct.unpack(">H", buffer[4:6])[0]:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(answers)} of {count} answers"
            buffer += chunk
        size = 6 + struct.unpack(">H", buffer[4:6])[0]
        answers.append(buffer[:size])
        buffer = buffer[size:]
    return answers


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed or hostile client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_each_write_names_its_connection_and_peer(server):
    """``next_write`` gives the write's connection (slot, generation, never reused) and the
    client's address:port; ``is_open`` follows the connection; the answer reaches it."""
    seen = set()
    for _ in range(3):
        with connect(server.port) as client:
            client.sendall(mbap(bytes([6, 0, 10, 0, 42])))
            item = server.next_write(2.0)
            assert item is not None
            slot, generation, frame, peer = item
            host, port = client.getsockname()
            assert peer == f"{host}:{port}"
            assert frame == mbap(bytes([6, 0, 10, 0, 42]))
            assert server.is_open(slot, generation)
            assert (slot, generation) not in seen
            seen.add((slot, generation))
            server.complete(slot, generation, frame[:7], frame[7:])
            assert client.recv(300) == frame
        wait_for(lambda s=slot, g=generation: not server.is_open(s, g), what="closed")
    assert len({slot for slot, _ in seen}) == 1  # the slot is reused, the generation is not


def test_a_storm_of_writes_and_resets_loses_none_and_corrupts_nothing():
    """Item 3: at most MAX_PENDING writes wait for Python, the rest are answered 06 at once;
    400 connections each sending one write and resetting: every write is handed to Python,
    refused with 06 or dropped with its connection (counted), none answered onto a later
    connection; then the server still serves (also run under ASan: ``make test``)."""
    server = serve(max_conn=256, max_per_peer=256, idle_timeout=30.0, frame_timeout=2.0)
    handed = 0
    try:
        clients = [connect(server.port) for _ in range(100)]
        for k, client in enumerate(clients):
            client.sendall(mbap(struct.pack(">BHH", 6, k, k), transaction=k))
        refused, deadline = set(), time.monotonic() + 5.0
        while len(refused) < 100 - MAX_PENDING and time.monotonic() < deadline:
            readable, _, _ = select.select(clients, [], [], 0.1)
            for client in readable:
                k = clients.index(client)
                assert client.recv(300) == struct.pack(">HHHB", k, 0, 3, 1) + bytes([0x86, 6])
                refused.add(k)
        assert len(refused) == 100 - MAX_PENDING, "writes beyond the bound not answered 06"
        for _ in range(MAX_PENDING):  # the ones waiting: answered, each on its connection
            slot, generation, frame, _peer = server.next_write(2.0)
            handed += 1
            assert server.complete(slot, generation, frame[:7], frame[7:]) is not False
        for k, client in enumerate(clients):
            if k not in refused:
                client.settimeout(2.0)
                assert client.recv(300) == mbap(struct.pack(">BHH", 6, k, k), transaction=k)
            client.close()

        # the storm: nobody takes writes meanwhile. Until the server has read at least 100
        # writes before their reset (a loaded machine reads fewer of each storm): more storms
        storms, deadline = 0, time.monotonic() + 60.0
        while server.counters["requests"] - 100 < 100:
            assert time.monotonic() < deadline, f"{storms} storms: {server.counters}"
            for k in range(400):
                client = connect(server.port)
                client.sendall(mbap(struct.pack(">BHH", 6, k, k), transaction=k))
                reset(client)
            storms += 1
            wait_for(lambda n=storms: server.connections == 0
                  and server.counters["accepted"] == 100 + 400 * n, 10.0,
                  "every storm connection accepted and closed")
            while (item := server.next_write(0.2)) is not None:  # none: dropped with them
                handed += 1
                assert server.complete(item[0], item[1], item[2][:7], item[2][7:]) is not True
        counters = server.counters
        assert counters["requests"] == (handed + counters.get("busy", 0)
                                        + counters.get("writes_dropped", 0)), counters

        with connect(server.port) as client:  # it still serves, reads and writes
            client.sendall(read_request(5, 3))
            assert client.recv(300) == struct.pack(">HHHB", 7, 0, 9, 1) + bytes([3, 6]) + (
                words(5, 3))
            client.sendall(mbap(struct.pack(">BHH", 6, 1, 99)))
            slot, generation, frame, peer = server.next_write(2.0)
            assert frame == mbap(struct.pack(">BHH", 6, 1, 99))  # its own, not a stale one
            assert peer == "{}:{}".format(*client.getsockname())
            assert server.complete(slot, generation, frame[:7], frame[7:])
            assert client.recv(300) == frame
    finally:
        server.stop()


def test_pipelined_reads_beyond_the_output_buffer_are_all_answered_in_order(server):
    """Item 4: 40 pipelined reads of 56 registers (4 840 bytes of answers, more than a
    connection's 4 KiB of output): all answered, complete and in order, burst after burst."""
    request = b"".join(read_request(t, 56, transaction=t) for t in range(40))
    with connect(server.port) as client:
        for _burst in range(20):
            client.sendall(request)
            answers = read_answers(client, 40)
            for t, answer in enumerate(answers):
                assert answer == struct.pack(">HHHB", t, 0, 115, 1) + bytes([3, 112]) + (
                    words(t, 56))


def test_a_client_that_never_reads_its_answers_is_dropped():
    """Item 5: a client that keeps sending requests and never reads is not read any more
    once its answers back up, and is dropped after frame_timeout (0.5 s), counted."""
    server = serve(max_conn=4, idle_timeout=30.0, frame_timeout=0.5)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", server.port))
        wait_for(lambda: server.connections == 1, what="the connection accepted")
        client.setblocking(False)
        burst = read_request(0, 125) * 100
        # how soon the answers back up depends on the kernel's socket buffers and on how often
        # this loop runs (a loaded machine): wait, bounded, for the drop
        started, dropped_after = time.monotonic(), None
        while time.monotonic() - started < 30.0:
            try:
                client.send(burst)
            except BlockingIOError:
                pass
            except OSError:  # reset by the server
                dropped_after = time.monotonic() - started
                break
            if server.connections == 0:
                dropped_after = time.monotonic() - started
                break
            time.sleep(0.005)
        assert dropped_after is not None, "a client that never reads was never dropped"
        # counted by the server's thread as it publishes its counters, maybe just after the
        # client saw the reset
        wait_for(lambda: server.counters["dropped"] >= 1, what="the drop counted")
        assert server.counters["stalled"] == 1 and server.counters["dropped"] == 1
    finally:
        client.close()
        server.stop()


def hold(port: int, address: str, stop: threading.Event) -> None:
    """A holder: one connection from ``address``, one read a second, reconnecting when
    closed (as a hostile or careless peer keeps a slot)."""
    while not stop.is_set():
        try:
            with connect(port, address) as sock:
                while not stop.is_set():
                    sock.sendall(read_request(0, 1))
                    if not sock.recv(300):
                        break
                    stop.wait(1.0)
        except OSError:
            stop.wait(0.05)


def test_eight_holders_do_not_keep_a_legitimate_client_out():
    """Item 5: with max_conn 8, eight holders (from eight addresses) each sending one request
    a second: a new client is served within 1 s, every time (the longest idle makes room)."""
    server = serve(max_conn=8, idle_timeout=60.0, frame_timeout=1.0)
    stop = threading.Event()
    holders = [threading.Thread(target=hold, args=(server.port, f"127.0.0.{10 + k}", stop))
               for k in range(8)]
    try:
        for t in holders:
            t.start()
        for _attempt in range(8):
            wait_for(lambda: server.connections == 8, 5.0, "the eight holders connected")
            time.sleep(0.3)  # each holder idle a little
            started = time.monotonic()
            with connect(server.port, "127.0.0.50") as client:
                client.settimeout(1.0)
                client.sendall(read_request(3, 2))
                answer = client.recv(300)
            assert answer == struct.pack(">HHHB", 7, 0, 7, 1) + bytes([3, 4]) + words(3, 2)
            assert time.monotonic() - started < 1.0
        assert server.counters["evicted"] >= 1  # (some attempts found a holder reconnecting)
    finally:
        stop.set()
        for t in holders:
            t.join(5.0)
        server.stop()


def test_one_address_holds_at_most_max_per_peer_connections():
    """Item 5: a newcomer from an address that holds max_per_peer connections closes that
    address's longest idle, never another peer's."""
    server = serve(max_conn=8, max_per_peer=2, idle_timeout=60.0, frame_timeout=1.0)
    try:
        other = connect(server.port, "127.0.0.3")
        mine = []
        for _ in range(4):
            mine.append(connect(server.port, "127.0.0.2"))
            time.sleep(0.02)
        wait_for(lambda: server.counters["evicted"] == 2, what="two of its own evicted")
        for sock, closed in zip(mine, (True, True, False, False), strict=True):
            sock.settimeout(0.5)
            sock.sendall(read_request(0, 1)) if not closed else None
            assert (sock.recv(300) == b"") is closed
        other.sendall(read_request(0, 1))
        assert len(other.recv(300)) == 11  # the other peer kept its connection
        assert server.connections == 3
        for sock in (other, *mine):
            sock.close()
    finally:
        server.stop()


def test_600_back_to_back_connects_none_waits_for_a_syn_retry():
    """Item 5: 600 connects at once: the relay's listener's backlog holds them, none waits
    for the kernel's 1 s SYN retransmission."""
    server = serve(max_conn=256, idle_timeout=10.0, frame_timeout=1.0)
    sel = selectors.DefaultSelector()
    socks = []
    try:
        started = time.monotonic()
        for _ in range(600):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            sel.register(sock, selectors.EVENT_WRITE)
            socks.append(sock)
        took = []
        while len(took) < 600 and time.monotonic() - started < 10.0:
            for key, _ in sel.select(0.1):
                took.append(time.monotonic() - started)
                sel.unregister(key.fileobj)
        assert len(took) == 600
        assert max(took) < 0.7, sorted(took)[-5:]
    finally:
        for sock in socks:
            sock.close()
        server.stop()


EMFILE_CHILD = r"""
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
from support.mbserver import serve
server = serve(max_conn=16, idle_timeout=30.0, frame_timeout=1.0)
print(server.port, flush=True)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
spare = []
try:
    while True:
        spare.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
print("full", flush=True)
sys.stdin.readline()
for fd in spare:
    os.close(fd)
print("freed", flush=True)
sys.stdin.readline()
print(json.dumps(server.counters), flush=True)
server.stop()
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_no_file_descriptor_left_refuses_newcomers_without_spinning():
    """Item 7: accept() failing with EMFILE: the newcomers are refused (closed), the thread
    does not spin (CPU), and once descriptors are free again a client is served."""
    child = subprocess.Popen([sys.executable, "-c", EMFILE_CHILD, str(ROOT / "tests")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    clients = []
    try:
        port = int(child.stdout.readline())
        assert child.stdout.readline().strip() == "full"
        clients = [socket.create_connection(("127.0.0.1", port), 2.0) for _ in range(5)]
        time.sleep(0.2)
        cpu0, t0 = cpu_seconds(child.pid), time.monotonic()
        time.sleep(1.0)
        busy = (cpu_seconds(child.pid) - cpu0) / (time.monotonic() - t0)
        assert busy < 0.3, f"the server thread spins: {busy:.0%} of a CPU"
        for client in clients:  # refused, not left hanging
            client.settimeout(3.0)
            with contextlib.suppress(ConnectionResetError):
                assert client.recv(300) == b""
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "freed"
        deadline = time.monotonic() + 3.0
        while True:  # the pause after a failed accept() is short
            with socket.create_connection(("127.0.0.1", port), 2.0) as client:
                client.settimeout(1.0)
                client.sendall(read_request(0, 2))
                try:
                    answer = client.recv(300)
                except (ConnectionResetError, TimeoutError):
                    answer = b""
            if answer or time.monotonic() > deadline:
                break
        assert answer == struct.pack(">HHHB", 7, 0, 7, 1) + bytes([3, 4]) + words(0, 2)
        child.stdin.write("\n")
        child.stdin.flush()
        counters = json.loads(child.stdout.readline())
        assert counters["accept_errors"] >= 1 and counters["refused"] >= 5
        assert child.wait(10.0) == 0
    finally:
        for client in clients:
            client.close()
        child.kill()
        child.wait()


def test_the_counters_are_one_consistent_copy_while_clients_come_and_go(server):
    """Item 7: read while connections open and close and requests run, the counters and the
    open connections always agree (accepted = open + closed): one copy, never torn."""
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            with connect(server.port) as sock:
                sock.sendall(read_request(0, 1))
                sock.recv(300)

    workers = [threading.Thread(target=churn) for _ in range(3)]
    for t in workers:
        t.start()
    try:
        seen = set()
        deadline = time.monotonic() + 30.0  # until they changed 50 times (slower when loaded)
        while len(seen) <= 50 and time.monotonic() < deadline:
            c = server.counters
            assert c["accepted"] == c["open"] + c["closed"], c
            assert c["requests"] >= c["exceptions"]
            seen.add(c["accepted"])
        assert len(seen) > 50, f"the counters changed {len(seen)} times in 30 s"
    finally:
        stop.set()
        for t in workers:
            t.join(5.0)
