"""A helper process's lifeline to the scan process: it never outlives it.

The companion (field I/O) and the telemetry process call ``bind_to_parent`` first thing. On
Linux the kernel then sends them SIGKILL the moment the scan process goes (kill -9 included:
PR_SET_PDEATHSIG), so no field device is polled, no port held, once the relay is gone. Their
loops also check ``orphaned`` (the parent pid changed), which covers a kernel that refused the
prctl. Both are needed: the death signal is armed only once the child runs, so a parent that
died during the child's start is caught by the pid check right after arming.

PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process: the
scan process must start its helpers from threads that live as long as the helpers do (the
main thread, or the supervisor, which outlives the children it starts).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal

log = logging.getLogger("softrelay")

PR_SET_PDEATHSIG = 1
ORPHANED_EXIT = 3  #: the exit code of a helper that found its scan process gone
#: the exit code of a helper refused by a shared image (another layout or configuration)
REFUSED_EXIT = 2


def bind_to_parent(parent_pid: int) -> bool:
    """Die with ``parent_pid`` (this process's parent, the scan process): SIGKILL on its
    death; exits at once if it is already gone. Returns whether the kernel armed the signal
    (if not, ``orphaned`` in the helper's loop is the only lifeline, and a warning says so)."""
    armed = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0) == 0
        reason = os.strerror(ctypes.get_errno()) if not armed else ""
    except (OSError, AttributeError) as exc:  # no libc prctl: not Linux
        reason = str(exc)
    if orphaned(parent_pid):
        os._exit(ORPHANED_EXIT)
    if not armed:
        log.warning("helper process %d: no death signal from the kernel (%s): it stops when "
                    "it finds the scan process gone, within its loop's period", os.getpid(),
                    reason)
    return armed


def orphaned(parent_pid: int) -> bool:
    """The scan process ``parent_pid`` is gone (this process was handed to another parent)."""
    return os.getppid() != parent_pid
