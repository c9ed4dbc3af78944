"""The compiled Modbus/TCP server (``softrelay._mbserver``) alone, as a hostile or careless peer
on the plant network would try it: over real TCP on 127.0.0.1, a server on a small register
image of its own (no relay), whose writes the test itself answers (``next_write`` /
``complete``) or leaves waiting."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest

from softrelay._mbserver import ModbusServer

HEADER = 64  # the seqlock header before the snapshot's data
WORDS = 200  # holding and input registers in the test image
BITS = 64


class Image:
    """A published snapshot region: the four tables, every address mapped, word i = i."""

    def __init__(self) -> None:
        self.offsets = [0, BITS, 2 * BITS, 2 * BITS + 2 * WORDS]  # coil, di, ir, hr
        size = HEADER + self.offsets[3] + 2 * WORDS
        self.buffer = np.zeros(size + 8, np.uint8)
        start = (-self.buffer.ctypes.data) % 8
        self.region = self.buffer[start:start + size]
        data = self.region[HEADER:]
        for t in (2, 3):
            data[self.offsets[t]:self.offsets[t] + 2 * WORDS] = np.arange(
                WORDS, dtype="<u2").view(np.uint8)
        self.region[:8] = np.array([2], "<u8").view(np.uint8)  # published, even
        sizes = [BITS, BITS, WORDS, WORDS]
        self.images = [(self.offsets, sizes, [np.ones(n, np.uint8) for n in sizes])]


def serve(**options) -> ModbusServer:
    image = Image()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = ModbusServer(image.region, image.images, [0] * 256, b"\x00\x04test", sock,
                          **options)
    server.start()
    return server


@pytest.fixture
def server():
    s = serve(max_conn=16, idle_timeout=5.0, frame_timeout=0.5)
    yield s
    s.stop()


def mbap(pdu: bytes, unit: int = 1, transaction: int = 7) -> bytes:
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), 2.0)


def until(condition, seconds: float = 3.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {seconds} s"
        time.sleep(0.005)


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
        until(lambda s=slot, g=generation: not server.is_open(s, g), what="closed")
    assert len({slot for slot, _ in seen}) == 1  # the slot is reused, the generation is not
