"""Named NumPy tables in one shared-memory block, published under a seqlock.

One process (or thread) writes, any number read; a reader always gets one writer's complete
version, never two mixed (``softrelay._shm``). The scan and the companion process exchange
the input image and the output snapshot this way, so neither ever waits for the other.

A writer works on a private staging copy and publishes it whole in one compiled call, so no
Python thread switch can leave the shared version half-written for readers to wait on.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections.abc import Iterator
from multiprocessing import shared_memory

import numpy as np

from softrelay import _shm

Layout = dict[str, tuple[np.dtype, tuple[int, ...]]]


def _offsets(layout: Layout) -> tuple[dict[str, int], int]:
    offsets, size = {}, 0
    for name, (dtype, shape) in layout.items():
        size = (size + 63) // 64 * 64  # every table on a cache line
        offsets[name] = size
        size += int(np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)))
    return offsets, size


class SharedImage:
    """``layout`` maps a table's name to (dtype, shape). Create it, or attach to it by name."""

    def __init__(self, layout: Layout, name: str | None = None, create: bool = True) -> None:
        self.layout = dict(layout)
        offsets, data_size = _offsets(self.layout)
        self.offsets = offsets  #: each table's byte offset in the data (after the header)
        total = _shm.HEADER + max(data_size, 8)
        self.shm: shared_memory.SharedMemory | None = None
        self.map: mmap.mmap | None = None
        if create:
            # The creator owns the segment: unlinked on close, or by the resource tracker if
            # the process dies.
            self.shm = shared_memory.SharedMemory(name=name, create=True, size=total)
            self.shm.buf[:total] = bytes(total)
            self._name = self.shm.name
            buffer = self.shm.buf
        else:
            # Attached by mapping the segment itself: never registered with (and so never
            # unlinked by) this process's resource tracker.
            self._name = name.lstrip("/")
            fd = os.open(f"/dev/shm/{self._name}", os.O_RDWR)
            try:
                self.map = mmap.mmap(fd, total)
            finally:
                os.close(fd)
            buffer = memoryview(self.map)
        self.owner = create
        self._buffer = buffer
        self.region = np.frombuffer(buffer, dtype=np.uint8, count=total)
        self.data_size = total - _shm.HEADER
        self._copy = np.zeros(self.data_size, np.uint8)
        self.copies = {
            table: np.ndarray(shape, dtype, buffer=self._copy, offset=offsets[table])
            for table, (dtype, shape) in self.layout.items()
        }
        self._staging = np.zeros(self.data_size, np.uint8)
        self.staging = {
            table: np.ndarray(shape, dtype, buffer=self._staging, offset=offsets[table])
            for table, (dtype, shape) in self.layout.items()
        }
        self._staging_loaded = create
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def reader(self) -> SharedImage:
        """Another attachment to the same segment, with copy buffers of its own: for a second
        reading thread (``read`` refills one set of arrays, so two threads must not share
        it). Close it before its creator."""
        return SharedImage(self.layout, name=self._name, create=False)

    @contextlib.contextmanager
    def writing(self) -> Iterator[dict[str, np.ndarray]]:
        """Change the tables inside this block; on leaving it they are published as one new
        version (readers see all of the change or none of it)."""
        with self._lock:
            if not self._staging_loaded:  # an attached writer starts from what is shared
                _shm.read_into(self.region, self._staging)
                self._staging_loaded = True
            yield self.staging
            _shm.write(self.region, self._staging)

    def read(self) -> dict[str, np.ndarray]:
        """A consistent private copy of every table (the same arrays, refilled each call: one
        reading thread per SharedImage; another thread takes a ``reader()``)."""
        _shm.read_into(self.region, self._copy)
        return self.copies

    def close(self) -> None:
        """Detach; the creator also removes the segment. Safe to call twice."""
        if self._buffer is None:
            return
        self.region = None
        buffer, self._buffer = self._buffer, None
        if self.map is not None:
            buffer.release()
            self.map.close()
            self.map = None
        if self.shm is not None:
            shm, self.shm = self.shm, None
            shm.close()
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()
