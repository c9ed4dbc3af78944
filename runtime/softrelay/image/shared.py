"""Named NumPy tables in one shared-memory block, published under a seqlock.

One process (or thread) writes, any number read; a reader always gets one writer's complete
version, never two mixed (``softrelay._shm``). The scan and the companion process exchange
the input image and the output snapshot this way, so neither ever waits for the other.

A writer works on a private staging copy and publishes it whole in one compiled call, so no
Python thread switch can leave the shared version half-written for readers to wait on.

Segments are files in /dev/shm, created and mapped here directly: never registered with
multiprocessing's resource tracker, which would unlink them when it exits (a tracker outliving
a killed relay would remove the restarted relay's segments of the same name). A relay's
segments are named after it (``segment_prefix``), so the next start reclaims (unlinks and
recreates) what a killed instance left; ``InstanceLock`` keeps two instances of one relay from
running at once.

Every segment carries its layout's fingerprint (a hash of each table's name, dtype and shape,
in order) in a first table of its own, written by the creator before anything is published: a
process attaching with a layout that differs in anything (another version, another
configuration, tables in another order) is refused with ``LayoutMismatchError`` instead of reading
another process's fields as its own.

A process attaching never recomputes the layout: the creator hands it an ``Attachment``
(``SharedImage.attachment()``: the segment's name and its layout as JSON text, table by table
in order), and the attach compares that layout's fingerprint with the segment's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import mmap
import os
import secrets
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softrelay import _shm

Layout = dict[str, tuple[np.dtype, tuple[int, ...]]]

SHM = Path("/dev/shm")  #: where POSIX shared memory lives on Linux (shm_open's names)


def segment_prefix(relay_name: str, state_file: str | os.PathLike) -> str:
    """``softrelay-<relay name>-<8 hex>``: the name of a relay's segments and lock in /dev/shm.

    The hex digits are a hash of the absolute path of its state file: a relay is its name and
    its thermal memory, so two relays of one name that keep their state apart (a test's
    temporary directory, ``softrelay bench``) never collide, and the same relay started again
    finds its own. (A relay name is letters, digits, ``_-.``: valid in a file name; past 100
    characters it is cut, the hash still telling relays apart.)
    """
    identity = f"{relay_name}\0{Path(state_file).resolve()}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"softrelay-{relay_name[:100]}-{key}"


class LayoutMismatchError(RuntimeError):
    """A segment attached with a layout other than the one it was created with."""


#: the table before all others: the fingerprint of the layout the creator used (32 bytes),
#: then the hash of the configuration it was made for (``config.identity.config_hash``, 8
#: bytes big-endian; 0: not said)
FINGERPRINT = "__layout__"
MARK = 40


def fingerprint(layout: Layout) -> bytes:
    """32 bytes that change with any table's name, dtype (fields, offsets, byte order), shape
    or place in ``layout``."""
    text = repr([(name, np.dtype(dtype).descr, np.dtype(dtype).itemsize, tuple(shape))
                 for name, (dtype, shape) in layout.items()])
    return hashlib.sha256(text.encode()).digest()


def layout_json(layout: Layout) -> str:
    """``layout`` as JSON text: ``[[table, dtype, shape], ...]`` in the layout's order, each
    dtype in NumPy's own description (``numpy.lib.format.dtype_to_descr``: fields, padding,
    byte order). ``layout_from_json`` reads it back to a layout of the same fingerprint."""
    return json.dumps([[name, np.lib.format.dtype_to_descr(np.dtype(dtype)), list(shape)]
                       for name, (dtype, shape) in layout.items()])


def layout_from_json(text: str) -> Layout:
    """The layout ``layout_json`` wrote."""
    return {name: (np.lib.format.descr_to_dtype(_descr(descr)), tuple(shape))
            for name, descr, shape in json.loads(text)}


def _descr(value):
    """A dtype's description as JSON gave it back (lists) into the tuples NumPy reads: each
    field ``(name, descr)`` or ``(name, descr, shape)``, a titled name ``(title, name)``."""
    if isinstance(value, str):
        return value
    return [(tuple(name) if isinstance(name, list) else name, _descr(descr),
             *(tuple(shape) for shape in rest)) for name, descr, *rest in value]


@dataclass(frozen=True)
class Attachment:
    """What a process needs to attach to a shared image another one created: the segment's
    ``name`` and its ``layout`` (``layout_json`` text). The creator hands it over
    (``SharedImage.attachment()``) instead of the other process computing the layout again;
    ``attach()`` refuses a segment of another layout, or made for a configuration other than
    the attaching process's (``LayoutMismatchError``, naming both fingerprints or hashes)."""

    name: str
    layout: str

    def attach(self, configuration: int) -> SharedImage:
        """The image, attached (not created): closed by whoever attached it.
        ``configuration``: the hash of the configuration this process runs on (its own, not
        the one handed over: that would check nothing); 0 attaches whatever it was made
        for."""
        return SharedImage(layout_from_json(self.layout), name=self.name, create=False,
                           configuration=configuration)


def attach_all(attachments: Sequence[Attachment], configuration: int) -> list[SharedImage]:
    """Each of ``attachments`` attached (``Attachment.attach``), in order; when one is
    refused, those already attached are closed before the error goes on."""
    attached: list[SharedImage] = []
    try:
        for attachment in attachments:
            attached.append(attachment.attach(configuration))
    except BaseException:
        for image in attached:
            image.close()
        raise
    return attached


class RelayRunningError(RuntimeError):
    """Another instance of the same relay holds its lock."""


class InstanceLock:
    """One running instance per relay: an exclusive ``flock`` on ``/dev/shm/<prefix>.lock``,
    holding the owner's pid, kept for the life of the process (the kernel drops it when the
    process dies, kill -9 included).

    ``previous``: the pid an instance that did not stop cleanly left in the file (a clean
    ``release`` removes it), else None. Raises ``RelayRunningError`` naming the running one.
    """

    def __init__(self, prefix: str, relay_name: str, what: str = "") -> None:
        self.path = SHM / f"{prefix}.lock"
        self.previous: int | None = None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = _pid_in(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                raise RelayRunningError(
                    f"relay {relay_name!r} is already running (pid {owner or 'unknown'})"
                    f"{what}: it holds {self.path}. Stop it first, or give this one another "
                    "name or state file") from None
            try:  # the file we locked is still the one under the name (not removed meanwhile)
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self.previous = _pid_in(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd
        self._close = weakref.finalize(self, os.close, fd)  # a relay dropped unstopped

    def release(self) -> None:
        """Remove the lock file and drop the lock. Safe to call twice."""
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._close()
            self._fd = None


def _configuration_refusal(name: str, made: int, ours: int) -> str:
    """Why segment ``name``, of this process's layout, refuses it: made for another
    configuration (both hashes, as the map's config_hash register shows them)."""
    return (f"shared image {name}: made for configuration {made:08x}, this process's is "
            f"{ours:08x} (same layout, another configuration: the process was not started "
            "by this relay, or its configuration was changed under it): refused")


def _refusal(name: str, made: bytes, ours: bytes, detail: str = "") -> str:
    """Why segment ``name`` refuses this process: both layouts' fingerprints (12 hex digits
    of each) and what else was seen."""
    return (f"shared image {name}: made with layout {made.hex()[:12] or 'unknown'}, this "
            f"process's is {ours.hex()[:12]} ({detail + '; ' if detail else ''}another "
            "version, configuration or table order): refused, its fields would be read as "
            "others")


def _pid_in(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _create_segment(name: str, size: int) -> mmap.mmap:
    """A new zeroed segment ``/dev/shm/<name>`` of ``size`` bytes, mapped; one left under the
    name (by a killed owner) is unlinked first: a process still mapping it keeps its own copy
    and never sees the new one change under it."""
    path = SHM / name
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size)
    except BaseException:
        path.unlink()
        raise
    finally:
        os.close(fd)


def _offsets(layout: Layout) -> tuple[dict[str, int], int]:
    offsets, size = {}, 0
    for name, (dtype, shape) in layout.items():
        size = (size + 63) // 64 * 64  # every table on a cache line
        offsets[name] = size
        size += int(np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)))
    return offsets, size


class SharedImage:
    """``layout`` maps a table's name to (dtype, shape). Create it (under ``name``, reclaiming
    a segment left under it; no name: a unique one), or attach to it by name."""

    def __init__(self, layout: Layout, name: str | None = None, create: bool = True,
                 configuration: int = 0) -> None:
        self.layout = dict(layout)
        self._fingerprint = fingerprint(self.layout)
        #: the hash of the configuration the creator made it for (0: not said); an attacher
        #: that says one is refused by a segment made for another
        self.configuration = configuration
        offsets, data_size = _offsets({FINGERPRINT: (np.dtype("u1"), (MARK,))} | self.layout)
        self.offsets = offsets  #: each table's byte offset in the data (after the header)
        total = _shm.HEADER + max(data_size, 8)
        if create:  # the creator owns the segment: unlinked on close
            self._name = (name or f"softrelay-{os.getpid()}-{secrets.token_hex(4)}").lstrip("/")
            self.map = _create_segment(self._name, total)
        else:
            if name is None:
                raise ValueError("attaching a shared image needs its name")
            self._name = name.lstrip("/")
            fd = os.open(SHM / self._name, os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                if size != total:  # the fingerprint, the first table, is where it always is
                    made = os.pread(fd, 32, _shm.HEADER + offsets[FINGERPRINT])
                    raise LayoutMismatchError(_refusal(
                        self._name, made, self._fingerprint,
                        f"{size} bytes, this process's layout needs {total}"))
                self.map = mmap.mmap(fd, total)
            finally:
                os.close(fd)
        buffer = memoryview(self.map)
        self.owner = create
        self._buffer: memoryview | None = buffer  #: None once closed
        #: the whole segment (deleted on close: the buffer is released)
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
        # In place, outside the seqlock (its sequence stays 0: "nothing published yet", which
        # the Modbus server answers with 06), before anyone is given the name; never changed
        # after: every version written carries the same bytes (the staging copy has them).
        at = _shm.HEADER + offsets[FINGERPRINT]
        if create:
            mark = self._fingerprint + configuration.to_bytes(MARK - 32, "big")
            self._staging[offsets[FINGERPRINT]:offsets[FINGERPRINT] + MARK] = np.frombuffer(
                mark, np.uint8)
            self.region[at:at + MARK] = np.frombuffer(mark, np.uint8)
        else:
            mark = bytes(self.region[at:at + MARK])
            made_for = int.from_bytes(mark[32:], "big")
            if mark[:32] != self._fingerprint:
                self.close()
                raise LayoutMismatchError(_refusal(self._name, mark[:32], self._fingerprint))
            if configuration and made_for and made_for != configuration:
                self.close()
                raise LayoutMismatchError(_configuration_refusal(self._name, made_for,
                                                                 configuration))
            if not configuration:
                self.configuration = made_for

    @property
    def name(self) -> str:
        return self._name

    def attachment(self) -> Attachment:
        """What another process is handed to attach to this image (its name and layout)."""
        return Attachment(self._name, layout_json(self.layout))

    def reader(self) -> SharedImage:
        """Another attachment to the same segment, with copy buffers of its own: for a second
        reading thread (``read`` refills one set of arrays, so two threads must not share
        it). Close it before its creator."""
        return SharedImage(self.layout, name=self._name, create=False,
                           configuration=self.configuration)

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

    def read(self, give_up_ms: float = _shm.GIVE_UP_MS) -> dict[str, np.ndarray]:
        """A consistent private copy of every table (the same arrays, refilled each call: one
        reading thread per SharedImage; another thread takes a ``reader()``).

        TimeoutError when no whole version was seen within ``give_up_ms`` (a writer stopped
        mid-write); the copies then hold a torn read and must not be used."""
        _shm.read_into(self.region, self._copy, give_up_ms)
        return self.copies

    def close(self) -> None:
        """Detach; the creator also removes the segment. Safe to call twice."""
        if self._buffer is None:
            return
        del self.region  # its view of the buffer, which is released next
        buffer, self._buffer = self._buffer, None
        if self.owner:
            with contextlib.suppress(FileNotFoundError):
                (SHM / self._name).unlink()
        buffer.release()
        self.map.close()
