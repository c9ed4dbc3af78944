"""Writing the relay's own files: every byte or a fault, and what a fault means in words.

A write that the kernel cuts short (a nearly full disk) returns fewer bytes than asked;
``write_all`` goes on until everything is written or the kernel refuses with an error, so a
caller never mistakes a torn file for a whole one. ``trouble_text`` turns a failed write into
the reason and the remedy an operator reads in the events and in ``trouble``.

Contract: nothing here retries or swallows an error; the callers (the event recorder, the
checkpointer) decide what a failure means.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

#: what to do about each errno, in the operator's words
REMEDIES = {
    errno.EROFS: "read-only file system: remount it read-write or point state.dir at a "
                 "writable place",
    errno.EACCES: "permission denied: check the state directory's owner and permissions",
    errno.EPERM: "not permitted: check the state directory's owner and permissions",
    errno.ENOSPC: "no space left on the device: free some space on it",
    errno.EDQUOT: "disk quota exceeded: free some space or raise the quota",
    errno.EISDIR: "it is a directory: the setting must name a file",
    errno.ENOTDIR: "a part of the path is not a directory: check state.dir and the file "
                   "settings",
    errno.EEXIST: "a part of the path is a file, not a directory: check state.dir and the "
                  "file settings",
    errno.ENOENT: "the directory does not exist and cannot be made: check state.dir",
    errno.EIO: "I/O error: the disk or memory card may be failing",
}


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``, looping over short writes; OSError (ENOSPC
    when the kernel takes nothing more) when that cannot be done."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "no byte written (short write)")
        view = view[written:]


def trouble_text(path: Path, exc: BaseException) -> str:
    """'cannot write <path>: <reason>: <remedy>' for a failed open, write or rename."""
    code = getattr(exc, "errno", None)
    if code in REMEDIES:
        return f"cannot write {path}: {REMEDIES[code]}"
    reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return f"cannot write {path}: {reason}: check the disk and the state directory"
