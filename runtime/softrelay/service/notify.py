"""The sd_notify protocol (Type=notify services): READY, WATCHDOG, STOPPING, STATUS.

Messages are datagrams to $NOTIFY_SOCKET; outside systemd (no socket) every call is a no-op.
The socket is non-blocking: a datagram queue holds about ten messages, and a relay must never
wait for systemd to read (a full queue drops the message and counts it).
``WATCHDOG=1`` is sent at most every WATCHDOG_USEC / 4, and only when the scan watchdog says
the scan is running, so systemd restarts a relay whose scan has stalled. With the same calls,
at the first and then every ``status_every`` s, ``STATUS=`` carries ``describe()`` (what
``systemctl status`` shows: the scan's figures), so a stalled relay's status stops moving too.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable


class Notifier:
    def __init__(self, environ: dict | None = None,
                 describe: Callable[[], str] | None = None, status_every: float = 10.0) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.sock: socket.socket | None = None
        if address:
            if address.startswith("@"):
                address = "\0" + address[1:]
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
            self.sock.connect(address)
        usec = int(env.get("WATCHDOG_USEC", "0") or 0)
        self.watchdog_every = usec / 4e6 if usec else None
        self._fed = -1e9
        self.describe = describe
        self.status_every = status_every
        self._told = -1e9  # the first feed (scans running) tells at once
        self.sent = 0
        self.dropped = 0

    @property
    def active(self) -> bool:
        return self.sock is not None

    def notify(self, *lines: str) -> bool:
        if self.sock is None:
            return False
        try:
            self.sock.send("\n".join(lines).encode())
        except OSError:  # BlockingIOError (queue full) included: never wait
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping: last checkpoint, coils safe")

    def feed(self) -> None:
        """The scan is running: watchdog keep-alive, throttled to a quarter of systemd's
        timeout, and the status every ``status_every`` s (one datagram)."""
        if self.sock is None:
            return
        now = time.monotonic()
        lines = []
        if self.watchdog_every is not None and now - self._fed >= self.watchdog_every:
            self._fed = now
            lines.append("WATCHDOG=1")
        if self.describe is not None and now - self._told >= self.status_every:
            self._told = now
            lines.append(f"STATUS={self.describe()}")
        if lines:
            self.notify(*lines)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def status_line(healthy: bool, stats, trips: list[str],
                modbus_clients: int | None = None) -> str:
    """systemd's ``STATUS=`` while the relay runs, one line: health, the scan's figures
    (``stats``: the loop's ``ScanStats``), the points tripped, the Modbus clients (None: no
    slave)."""
    text = (f"{'healthy' if healthy else 'NOT healthy'}; scan "
            f"{stats.period_ns / 1e6:g} ms, {stats.scans} scans, lateness p99 "
            f"{stats.lateness.percentile(99.0) / 1e3:.0f} us, {stats.overruns} overruns; "
            + (f"TRIP {', '.join(trips)}" if trips else "no trip"))
    if modbus_clients is not None:
        text += f"; modbus {modbus_clients} client(s)"
    return text
