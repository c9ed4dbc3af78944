"""Real-time options for the scan thread, applied where permitted, refused with a warning.

SCHED_FIFO needs CAP_SYS_NICE (or root), mlockall needs CAP_IPC_LOCK (or a large enough
RLIMIT_MEMLOCK); the systemd unit grants both. Where an option is refused the relay runs the
same loop at normal priority and says so: it never stops for want of privileges.

With a real-time priority the relay also holds /dev/cpu_dma_latency at 0 (as cyclictest does:
the CPUs stay out of deep idle states, whose exit latency would add to every wake-up) and
shortens the interpreter's thread switch interval to 0.5 ms, so a helper thread of the scan
process can delay the scan by at most that much.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger("softrelay.scan")

MCL_CURRENT, MCL_FUTURE = 1, 2
PR_SET_TIMERSLACK = 29
SWITCH_INTERVAL = 0.0005
_dma_latency_fd: int | None = None  # held open for the life of the process


@dataclass(frozen=True)
class Applied:
    option: str
    ok: bool
    detail: str


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _hold_cpu_dma_latency() -> Applied:
    global _dma_latency_fd
    if _dma_latency_fd is not None:
        return Applied("cpu_dma_latency", True, "0 us (held)")
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        os.write(fd, struct.pack("i", 0))
    except OSError as exc:
        return Applied("cpu_dma_latency", False, f"{exc.strerror}: deep idle states allowed")
    _dma_latency_fd = fd
    return Applied("cpu_dma_latency", True, "0 us: no deep idle states")


def apply(priority: int = 0, lock_memory: bool = False, cpu: int | None = None,
          timer_slack_ns: int | None = 1) -> list[Applied]:
    """Apply the options to the calling thread (memory locking: the whole process)."""
    results: list[Applied] = []
    libc = _libc()
    if timer_slack_ns:
        rc = libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(timer_slack_ns), 0, 0, 0)
        results.append(Applied("timer slack", rc == 0, f"{timer_slack_ns} ns" if rc == 0
                               else os.strerror(ctypes.get_errno())))
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
            results.append(Applied("cpu affinity", True, f"CPU {cpu}"))
        except OSError as exc:
            results.append(Applied("cpu affinity", False, f"CPU {cpu}: {exc.strerror}"))
    if lock_memory:
        rc = libc.mlockall(MCL_CURRENT | MCL_FUTURE)
        results.append(Applied("mlockall", rc == 0, "memory locked" if rc == 0 else
                               f"{os.strerror(ctypes.get_errno())} (needs CAP_IPC_LOCK)"))
    if priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            results.append(Applied("SCHED_FIFO", True, f"priority {priority}"))
        except OSError as exc:
            results.append(Applied("SCHED_FIFO", False, f"priority {priority}: {exc.strerror} "
                                   "(needs CAP_SYS_NICE): running at normal priority"))
        results.append(_hold_cpu_dma_latency())
        sys.setswitchinterval(SWITCH_INTERVAL)
        results.append(Applied("switch interval", True, f"{SWITCH_INTERVAL * 1e3:g} ms"))
    for item in results:
        (log.info if item.ok else log.warning)("real time: %s %s: %s", item.option,
                                               "applied" if item.ok else "REFUSED", item.detail)
    return results


def keep_off_cpu(cpu: int | None) -> None:
    """Keep the calling process off ``cpu`` (the scan's, when it is pinned): a helper process
    would otherwise inherit the scan's affinity and share its CPU. None: no change."""
    if cpu is not None:
        others = set(range(os.cpu_count() or 1)) - {cpu}
        if others:
            os.sched_setaffinity(0, others)


def helper_priority(priority: int = 0) -> None:
    """For a helper process (companion, telemetry), first thing: every thread it has (the
    main one, and those a library started at import, e.g. OpenBLAS's), and so every thread
    it starts later, at ``priority`` (SCHED_FIFO; ``scan.realtime.helper_priority``) or, with
    0, at normal priority, whatever it inherited (``chrt -f 80 softrelay run`` included). A
    refused priority is a warning: normal."""
    policy, param = ((os.SCHED_FIFO, os.sched_param(priority)) if priority
                     else (os.SCHED_OTHER, os.sched_param(0)))
    for task in sorted(os.listdir("/proc/self/task"), key=lambda t: t != str(os.getpid())):
        try:
            os.sched_setscheduler(int(task), policy, param)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        except OSError as exc:
            log.warning("real time: helper process %d at SCHED_FIFO %d REFUSED: %s: running "
                        "at normal priority", os.getpid(), priority, exc.strerror)
            policy, param = os.SCHED_OTHER, os.sched_param(0)
            os.sched_setscheduler(0, policy, param)


@contextlib.contextmanager
def at_normal_priority() -> Iterator[None]:
    """The calling thread at normal priority inside the block, then back to its own: for
    starting a helper process, which then begins life at normal priority (it inherits the
    policy of the thread that starts it; its start-up never competes with the scan)."""
    try:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    except (OSError, AttributeError):
        yield
        return
    if policy == os.SCHED_OTHER:
        yield
        return
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, param)


def leave_realtime() -> None:
    """Put the calling thread back at normal priority (threads inherit the SCHED_FIFO of the
    thread that starts them). For the scan process's helper threads (event writer,
    checkpoints, Modbus): each takes the interpreter lock the scan needs, and must not do it
    at the scan's priority. A no-op where the thread already runs at normal priority."""
    with contextlib.suppress(OSError, AttributeError):
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
