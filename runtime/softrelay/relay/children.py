"""The relay's helper processes: spawned, waited for until ready, supervised, stopped.

- the **companion** (``softrelay.field.companion``: field I/O, the plant, the terminal view):
  started before the scan and waited for; when it exits, that is recorded once (its signals
  go stale and the core flags them) and the self-supervision fails its "I/O process" test;
- the **telemetry** process (``softrelay.telemetry.process``: metrics, MQTT, SNMP), when any
  of them is configured: started first (a port it cannot bind stops the start there), and
  started again, at most every 10 s, when it exits, with the events it missed.

Each is given the scan's validated configuration as JSON (``RelayConfig.model_dump_json``,
validated again in the child), never a path: a file edited since, or no file at all, cannot
give a helper another configuration than the scan's; the companion is handed the shared
images' layouts too (``SharedImage.attachment()``), which it attaches with, never computing
them again. Each begins with the one helper preamble (``softrelay.scan.helper.enter_helper``:
lifeline, priority, CPU, signals, logging).

A helper dies with the *thread* that started it (``softrelay.scan.lifeline``): ``start()``
runs on the relay's main thread, which lives until ``stop()``; a telemetry process started
again is started by the supervisor, which therefore lives until the helpers have ended.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent

from softrelay.config.relay import RelayConfig
from softrelay.field.companion import companion_main
from softrelay.image.shared import Attachment
from softrelay.records.events import EventRecorder
from softrelay.relay.errors import StartupError
from softrelay.relay.terminal import terminal_view
from softrelay.scan import realtime
from softrelay.telemetry.feed import EventFeed, feed_pair
from softrelay.telemetry.process import telemetry_main

#: s start() waits for the I/O and telemetry processes to say they are ready (under
#: qemu-user a helper's imports alone can take longer: tools/arm/qemu_profile.py)
HELPER_READY_S = 30.0
#: s between the terminal view's redraws (the companion draws it)
STATUS_EVERY_S = 0.5
#: s at least between two starts of the telemetry process by the supervisor
TELEMETRY_RESTART_S = 10.0


class Helpers:
    """The helper processes of one relay. ``start_telemetry()`` (when ``feed`` is given),
    ``start_companion()``, ``supervise()``; then ``quiesce()`` and ``stop()`` (or ``abort()``
    after a failed start)."""

    def __init__(self, config: RelayConfig, inputs: Attachment, snapshot: Attachment,
                 events: EventRecorder, *, status: bool = False, feed: EventFeed | None = None,
                 feed_receiver: socket.socket | None = None) -> None:
        """``inputs``, ``snapshot``: the images the relay created, as its helpers attach them
        (``SharedImage.attachment()``)."""
        self.config = config
        self.inputs = inputs
        self.snapshot = snapshot
        self.events = events
        self.status = status
        self.feed = feed
        self._feed_receiver = feed_receiver
        self.companion: BaseProcess | None = None
        self.telemetry: BaseProcess | None = None
        #: what the telemetry process serves on, e.g. {"metrics": 9650} (once started)
        self.ports: dict[str, int] = {}
        self._supervisor: threading.Thread | None = None
        self._supervising = threading.Event()  #: set: stop supervising (the relay stops)
        self._supervisor_idle = threading.Event()  #: it no longer starts helpers
        self._helpers_gone = threading.Event()  #: the helpers ended: its thread may end
        self._stop = multiprocessing.get_context("spawn").Event()

    def _common(self) -> tuple[int, int | None, int]:
        """(the scan process's pid, the scan's CPU, the helpers' priority): the preamble's."""
        rt = self.config.scan.realtime
        return os.getpid(), rt.cpu, rt.helper_priority

    # ---------------------------------------------------------------- the companion

    def start_companion(self) -> None:
        """The companion, started and waited for: ``StartupError`` when it exits first or
        stays silent."""
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        parent, cpu, priority = self._common()
        self.companion = companion = ctx.Process(
            target=companion_main, name="softrelay-io",
            args=(self.config.model_dump_json(), self.inputs, self.snapshot,
                  self._stop, ready, self.status, STATUS_EVERY_S, cpu, parent, priority,
                  terminal_view if self.status else None),
            daemon=True)
        with realtime.at_normal_priority():  # not the scan's: its own, from the start
            companion.start()
        wait_ready(companion, ready, HELPER_READY_S)

    def companion_trouble(self) -> str | None:
        """The self-supervision's "I/O process" test: why it fails, None while it passes."""
        companion = self.companion
        if companion is not None and not companion.is_alive():
            return f"exited (code {companion.exitcode}): the inputs go stale"
        return None

    # ---------------------------------------------------------------- the telemetry

    def start_telemetry(self) -> None:
        """The telemetry process (metrics, MQTT, SNMP); not waited on after it said it is
        ready (or why it cannot be: a ``StartupError``)."""
        receiver = self._feed_receiver
        assert receiver is not None, "the telemetry is started only with a feed"
        ctx = multiprocessing.get_context("spawn")
        answer, ready = ctx.Pipe(duplex=False)
        parent, cpu, priority = self._common()
        self.telemetry = telemetry = ctx.Process(
            target=telemetry_main, name="softrelay-telemetry",
            args=(self.config.model_dump_json(), self.snapshot, self.inputs,
                  receiver, self._stop, ready, cpu, self.status, parent, priority),
            daemon=True)
        with realtime.at_normal_priority():
            telemetry.start()
        ready.close()
        receiver.close()  # the child has its own: the feed fails when it dies
        try:
            said = (answer.recv() if answer.poll(HELPER_READY_S)
                    else f"no answer in {HELPER_READY_S:g} s")
        except EOFError:  # it died before it could say why
            telemetry.join(1.0)
            said = f"it exited ({telemetry.exitcode})"
        finally:
            answer.close()
        if isinstance(said, str):
            said = re.sub(r"^\[Errno \d+\] ", "", said)
            metrics = self.config.metrics
            if metrics is not None and "in use" in said:
                raise StartupError(f"port {metrics.port} in use: {said} (or set metrics.port)")
            raise StartupError(f"the telemetry process did not start: {said}")
        self.ports = said

    def telemetry_trouble(self) -> str | None:
        """The self-supervision's "telemetry process" test: why it fails, None while it
        passes."""
        telemetry = self.telemetry
        if telemetry is not None and not telemetry.is_alive():
            return f"exited (code {telemetry.exitcode})"
        return None

    # ---------------------------------------------------------------- supervision

    def supervise(self) -> None:
        """The supervisor's thread, when there is a helper to supervise."""
        if self.companion is not None or self.telemetry is not None:
            self._supervisor = threading.Thread(target=self._supervise, name="supervisor",
                                                daemon=True)
            self._supervisor.start()

    def _supervise(self) -> None:
        """The helper processes, every second (a thread of its own, at normal priority): a
        companion that exited is recorded once (its inputs go stale and the core flags them);
        a telemetry process that exited is recorded and started again, at most every 10 s,
        and given the events it missed from the recorder's ring.

        A telemetry process started here dies when this thread ends (its death signal follows
        the thread that started it): so on ``quiesce()`` this thread first stops starting
        helpers (``_supervisor_idle``), then lives on until the helpers have ended."""
        try:
            self._supervise_helpers()
        finally:
            self._supervisor_idle.set()
            self._helpers_gone.wait(60.0)

    def _supervise_helpers(self) -> None:
        realtime.leave_realtime()
        companion_reported = False
        next_restart = 0.0
        while not self._supervising.wait(1.0):
            companion, telemetry = self.companion, self.telemetry
            if companion is not None and not companion.is_alive() and not companion_reported:
                companion_reported = True
                self.events.record("fault", "companion", f"the I/O process exited (code "
                                   f"{companion.exitcode}): its signals go stale")
            if telemetry is not None and not telemetry.is_alive() \
                    and time.monotonic() >= next_restart:
                next_restart = time.monotonic() + TELEMETRY_RESTART_S
                self.events.record("fault", "telemetry", f"the telemetry process exited (code "
                                   f"{telemetry.exitcode}): starting it again")
                try:
                    sender, self._feed_receiver = feed_pair()
                    self.start_telemetry()
                    assert self.feed is not None, "a telemetry process has a feed"
                    self.feed.attach(sender, self.events.since)
                except Exception as exc:  # tried again in 10 s
                    self.events.record("fault", "telemetry", f"not started again: {exc}")

    # ---------------------------------------------------------------- the end

    def quiesce(self) -> None:
        """First of the relay's stop: supervising ends (the helpers' ends that follow are no
        failures) and no helper is started again."""
        self._supervising.set()
        if self._supervisor is not None:
            self._supervisor_idle.wait(35.0)

    def stop(self, join_s: float = 10.0, after_kill_s: float | None = None) -> None:
        """The helpers told to stop, joined (``join_s``), killed when they did not; then the
        supervisor's thread may end. ``after_kill_s``: how long a killed helper is joined
        (None: not joined). Safe to call twice."""
        self._tell_helpers_to_stop()
        for child in (self.companion, self.telemetry):
            if child is not None and child.pid is not None:
                child.join(join_s)
                if child.is_alive():
                    child.kill()
                    if after_kill_s is not None:
                        child.join(after_kill_s)
        self.companion = self.telemetry = None
        self._helpers_gone.set()
        if self._supervisor is not None:
            self._supervisor.join(5.0)

    def abort(self) -> None:
        """After a start that failed half-way: the helpers started are stopped (killed when
        they do not stop within 5 s)."""
        self._supervising.set()
        self.stop(join_s=5.0, after_kill_s=5.0)

    def _tell_helpers_to_stop(self) -> None:
        """Set the helpers' stop event, waiting at most 2 s: a helper killed while it waited
        on the event (a signal to the whole process group) leaves ``set()`` waiting for it to
        wake, forever; the helpers that did not see it are killed after their join."""
        setter = threading.Thread(target=self._stop.set, name="stop-helpers", daemon=True)
        setter.start()
        setter.join(2.0)


def wait_ready(process: BaseProcess, ready: ProcessEvent, within: float,
               now: Callable[[], float] = time.monotonic) -> None:
    """Until the I/O process says it is ready; a ``StartupError`` when it exits first (its
    own messages say why) or stays silent."""
    deadline = now() + within
    while not ready.wait(0.05):
        if not process.is_alive():
            raise StartupError(f"the I/O process exited (code {process.exitcode}) before "
                               "it was ready: its messages above say why")
        if now() > deadline:
            raise StartupError(f"the I/O process was not ready within {within:g} s")
