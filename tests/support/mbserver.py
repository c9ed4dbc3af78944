"""The compiled Modbus server alone (``softrelay._mbserver``), on a test image.

``serve(**options)`` starts a server on a free port of 127.0.0.1, on the relay's own listener,
every unit reading ``Image``: a published snapshot whose input and holding register ``i``
holds ``i``, so any answer can be checked against the address it was read from.
"""

from __future__ import annotations

import numpy as np

from softrelay._mbserver import ModbusServer
from softrelay.modbus.tcp_slave import listener

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
    """A started server on 127.0.0.1 (a free port), on the relay's own listener (its
    backlog), every unit reading the test image."""
    image = Image()
    server = ModbusServer(image.region, image.images, [0] * 256, b"\x00\x04test",
                          listener("127.0.0.1", 0), **options)
    server.start()
    return server
