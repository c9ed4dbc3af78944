"""Thermal memory: theta, latched trips and counters, kept across restarts and power losses.

Saved atomically (temporary file, fsync, rename, fsync of the directory): a power loss leaves
either the old file or the new one, never a torn one. A checksum catches what the file system
does not. At start the saved state is restored under the declared power-loss policy:

- ``freeze``: theta as saved (no cooling during the outage);
- ``cool``: theta cooled with each point's T- for the outage, measured on the wall clock
  (a clock that went backwards counts as no outage, and is reported);
- ``preset``: theta = preset_theta (hot), whatever was saved.

A missing file is a first start: each point starts at its theta_initial. A corrupt file is
kept aside (``.corrupt-<time>``) and every point starts at preset_theta, the conservative
choice. Either is reported, never a crash. Latched trips are restored as saved (a trip latched
before the outage is still latched after it), except where the file is missing or corrupt.

Upgrades: every file says its format (``version``). A file of an older format, written by an
earlier softrelay, is migrated (``MIGRATIONS``, one step per format) and restored as any other,
with a message saying so; the next checkpoint writes the present format. A file of a newer
format than this softrelay knows (after a downgrade) is not guessed at: it is kept aside
(``.format-<n>-<time>``, for the newer softrelay to restore) and every point starts at
preset_theta, as for a corrupt one, with a message saying which.

Format history: 1 (softrelay 0.1.0): saved_wall, points, extra. 2: adds ``written_by``, the
softrelay version that wrote the file (said when it is restored, so an upgrade's event names
both versions).

Contract: ``Checkpointer.submit`` never blocks the scan on the disk, nor on building the
document: the scan hands over a copy of the state table (a memcpy) and the checkpoint thread
builds the JSON (milliseconds for hundreds of points) and writes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from softrelay import __version__
from softrelay.records.disk import trouble_text, write_all

FORMAT_VERSION = 2
SAVED_FIELDS = ("theta", "start_elapsed", "start_count", "trip_count", "trip_latched",
                "alarm1", "alarm2", "running", "starting")


class StateFileError(ValueError):
    """The state file exists but cannot be trusted."""


class NewerFormatError(StateFileError):
    """The state file is whole but of a format newer than this softrelay reads (a downgrade)."""

    def __init__(self, version: int, written_by: str) -> None:
        self.version = version
        self.written_by = written_by
        super().__init__(f"format {version} (written by softrelay {written_by}); this "
                         f"softrelay {__version__} reads formats up to {FORMAT_VERSION}")


def _from_1(payload: dict) -> dict:
    """Format 1 -> 2: the writer's version was not recorded."""
    return {**payload, "version": 2, "written_by": "0.1.0 or earlier"}


#: format n -> the step that makes a format n payload format n + 1
MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _from_1}


def _checksum(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def snapshot(names: list[str], thermal_state: np.ndarray, extra: dict | None = None,
             wall: float | None = None) -> dict:
    """The document to save: every thermal point by name, and the extra counters."""
    points = {
        name: {f: thermal_state[f][i].item() for f in SAVED_FIELDS}
        for i, name in enumerate(names)
    }
    payload = {"version": FORMAT_VERSION, "written_by": __version__,
               "saved_wall": time.time() if wall is None else wall,
               "points": points, "extra": extra or {}}
    return {"payload": payload, "sha256": _checksum(payload)}


def write_atomically(path: Path, document: dict) -> None:
    """Write ``document`` as JSON so that ``path`` is always the old or the new file.

    Every byte is written (a short write is continued) and synced before the rename; on any
    failure (a full disk, a read-only one) the temporary file is removed, ``path`` is left as
    it was, and the OSError is raised for the caller to report.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(document, sort_keys=True).encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_state(path: Path) -> dict:
    """The saved payload in the present format; StateFileError when it is unreadable or fails
    its checksum, NewerFormatError when its format is newer than this softrelay's."""
    return load_state(path)[0]


def load_state(path: Path) -> tuple[dict, int]:
    """(the saved payload migrated to the present format, the format it was saved in)."""
    try:
        document = json.loads(path.read_bytes())
        payload = document["payload"]
        if document["sha256"] != _checksum(payload):
            raise StateFileError("checksum mismatch")
        saved = payload.get("version")
        if not isinstance(saved, int) or isinstance(saved, bool) or saved < 1:
            raise StateFileError(f"format version {saved!r} is not a format")
        if saved > FORMAT_VERSION:
            raise NewerFormatError(saved, str(payload.get("written_by", "unknown")))
        for step in range(saved, FORMAT_VERSION):
            payload = MIGRATIONS[step](payload)
        _check(payload)
        return payload, saved
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, StateFileError):
            raise
        raise StateFileError(f"not a state file ({exc.__class__.__name__}: {exc})") from None


def _check(payload: dict) -> None:
    """StateFileError unless ``payload`` has everything ``restore`` reads, as numbers."""
    float(payload["saved_wall"])
    if not isinstance(payload["points"], dict) or not isinstance(payload.get("extra", {}), dict):
        raise StateFileError("points or extra is not a mapping")
    for name, point in payload["points"].items():
        if not isinstance(point, dict):
            raise StateFileError(f"point {name!r} is not a mapping")
        missing = [f for f in SAVED_FIELDS if not isinstance(point.get(f), int | float)]
        if missing:
            raise StateFileError(f"point {name!r}: {', '.join(missing)} missing or not a number")


@dataclass
class Restored:
    """What restoring did, for the event recorder and the operator."""

    outcome: str  #: restored, missing, corrupt, newer (a format this softrelay cannot read)
    policy: str
    outage: float | None = None  #: s on the wall clock, when known
    messages: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def restore(path: Path, names: list[str], settings: np.ndarray, thermal_state: np.ndarray,
            policy: str, preset_theta: float, wall: float | None = None) -> Restored:
    """Fill ``thermal_state`` (rows in ``names`` order) from ``path`` under ``policy``."""
    now = time.time() if wall is None else wall
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # writes a crash cut short
        stale.unlink(missing_ok=True)
    if not path.exists():
        thermal_state["theta"] = settings["theta_initial"]
        return Restored("missing", policy, messages=[
            f"no thermal memory at {path}: first start, theta_initial for every point"])
    try:
        payload, saved_format = load_state(path)
    except NewerFormatError as exc:
        aside = path.with_name(f"{path.name}.format-{exc.version}-{int(now)}")
        try:
            os.replace(path, aside)
            kept = f"kept as {aside.name} for that softrelay"
        except OSError:
            kept = "left in place"
        thermal_state["theta"] = preset_theta
        return Restored("newer", policy, messages=[
            f"thermal memory {path} is {exc} (a downgrade?): {kept}, every point at preset "
            f"theta {preset_theta:g} (conservative); install softrelay {exc.written_by} or "
            f"later again to restore it"])
    except (StateFileError, OSError) as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(now)}")
        try:
            os.replace(path, aside)
            kept = f", kept as {aside.name}"
        except OSError:
            kept = ""
        thermal_state["theta"] = preset_theta
        return Restored("corrupt", policy, messages=[
            f"thermal memory {path} unusable ({exc}){kept}: every point at preset theta "
            f"{preset_theta:g} (conservative)"])

    result = Restored("restored", policy, extra=payload.get("extra", {}))
    if saved_format != FORMAT_VERSION:
        result.messages.append(
            f"thermal memory {path.name} written by softrelay {payload['written_by']} in "
            f"format {saved_format}: migrated to format {FORMAT_VERSION} (softrelay "
            f"{__version__}), restored; the next checkpoint writes format {FORMAT_VERSION}")
    outage = now - float(payload["saved_wall"])
    if outage < 0.0:
        result.messages.append(f"the wall clock is {-outage:.1f} s behind the last checkpoint: "
                               "no outage assumed")
        outage = 0.0
    result.outage = outage
    saved = payload["points"]
    for i, name in enumerate(names):
        point = saved.get(name)
        if point is None:
            thermal_state["theta"][i] = settings["theta_initial"][i]
            result.messages.append(f"{name}: not in the thermal memory, theta_initial")
            continue
        for f in SAVED_FIELDS:
            thermal_state[f][i] = point[f]
        if policy == "cool":
            thermal_state["theta"][i] *= math.exp(-outage / float(settings["t_cool"][i]))
            thermal_state["running"][i] = 0
            thermal_state["starting"][i] = 0
        elif policy == "preset":
            thermal_state["theta"][i] = preset_theta
    for name in sorted(set(saved) - set(names)):
        result.messages.append(f"{name}: in the thermal memory but no longer configured")
    return result


class Checkpointer:
    """Builds and writes checkpoints on a thread of its own; the scan only hands over a copy.

    A failed write leaves the previous file in place and sets ``trouble`` (the reason and the
    remedy) until a later checkpoint succeeds; ``on_error`` hears of a fault when it starts
    (or its reason changes), not at every failed checkpoint, and ``on_clear`` when a
    checkpoint is written again. Each later checkpoint is the retry.
    """

    def __init__(self, path: Path, on_error: Callable[[str], object] | None = None,
                 on_clear: Callable[[str], object] | None = None) -> None:
        self.path = path
        self.on_error = on_error
        self.on_clear = on_clear
        self.written = 0
        self.failures = 0
        self._trouble: str | None = None
        self._failed_in_a_row = 0
        self._pending: Callable[[], dict] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    @property
    def trouble(self) -> str | None:
        """The present fault (why the file cannot be written, and what to do), None when
        the last checkpoint was written."""
        return self._trouble

    def submit(self, build: Callable[[], dict]) -> None:
        """Queue the newest checkpoint: ``build()`` makes its document, on the checkpoint
        thread (an older one not yet written is superseded). Hand over copies, not live
        tables."""
        with self._lock:
            self._pending = build
            self._idle.clear()
        self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted snapshot is written (or has failed)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Write what is pending and stop; safe to call twice."""
        self.flush()
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=10.0)

    def _write(self, build: Callable[[], dict]) -> None:
        try:
            write_atomically(self.path, build())
        except Exception as exc:  # a disk's fault (or a bug) never ends the thread
            self.failures += 1
            self._failed_in_a_row += 1
            why = (trouble_text(self.path, exc) if isinstance(exc, OSError)
                   else f"cannot write {self.path}: {exc.__class__.__name__}: {exc}")
            first = why != self._trouble
            self._trouble = why
            if first and self.on_error is not None:
                self.on_error(f"checkpoint to {self.path} failed, the previous one is kept: "
                              f"{why}")
            return
        self.written += 1
        if self._trouble is not None:
            self._trouble = None
            if self.on_clear is not None:
                self.on_clear(f"checkpoint to {self.path} written again after "
                              f"{self._failed_in_a_row} failed one(s)")
        self._failed_in_a_row = 0

    def _run(self) -> None:
        from softrelay.scan.realtime import leave_realtime

        leave_realtime()  # building the JSON holds the interpreter lock: not at scan priority
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                build, self._pending = self._pending, None
            if build is not None:
                self._write(build)
            with self._lock:
                if self._pending is None:
                    self._idle.set()
            if self._stop:
                return
