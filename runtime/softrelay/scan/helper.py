"""The one preamble of every helper process (the companion, the telemetry process, the Modbus
TLS front): what each does first, before it attaches to anything.

1. its lifeline: it dies with the scan process (``lifeline.bind_to_parent``; exits at once if
   that is already gone);
2. its priority: every thread at ``scan.realtime.helper_priority`` (SCHED_FIFO) or normal,
   never the scan's (``realtime.helper_priority``), and off the scan's CPU;
3. its signals: Ctrl-C, and a SIGTERM sent to the whole group or cgroup (timeout, systemd's
   stop), reach it too, but stopping is the scan process's decision (the last checkpoint,
   the coils dropped, the last events, then its stop event): both are ignored. A helper
   killed while it waited on the stop event would leave the event's ``set()`` waiting;
4. its log lines, as the scan process's (``softrelay.logs.configure_logging``, handed in:
   ``scan`` comes before ``logs`` in the layers).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from softrelay.scan.lifeline import bind_to_parent
from softrelay.scan.realtime import helper_priority, keep_off_cpu


def enter_helper(parent_pid: int | None, priority: int, avoid_cpu: int | None,
                 configure_logging: Callable[[], None]) -> int:
    """The preamble, in the module's order; returns the scan process's pid (``parent_pid``,
    by default this process's parent), which the helper's loop watches (``orphaned``)."""
    parent_pid = parent_pid or os.getppid()
    bind_to_parent(parent_pid)
    helper_priority(priority)
    keep_off_cpu(avoid_cpu)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging()
    return parent_pid
