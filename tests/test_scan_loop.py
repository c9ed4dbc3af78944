"""The scan loop: deadlines on a grid, overruns skipped and counted, statistics, watchdog."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from softrelay import _timing
from softrelay.core import ProtectionCore, ThermalSettings
from softrelay.scan.clock import MonotonicClock, SimulatedClock
from softrelay.scan.loop import CORE_ONLY, CORE_PASS, BoundStage, ScanLoop
from softrelay.scan.realtime import apply
from softrelay.supervision.watchdog import Watchdog

from support.core import set_currents

MS = 1_000_000


def motor_core() -> ProtectionCore:
    core = ProtectionCore([ThermalSettings(i_b=100, t_heat=10, t_cool=30)])
    set_currents(core, 150.0, now=0.0)
    return core


def test_each_scan_runs_on_the_deadline_grid_with_dt_of_one_period():
    clock = SimulatedClock(10 * MS, start_ns=5 * MS)
    seen = []
    loop = ScanLoop(motor_core(), clock, [
        BoundStage("before", lambda core, now: seen.append(("before", now))),
        BoundStage(CORE_PASS, None),
        BoundStage("after", lambda core, now: seen.append(("after", now)))])
    for _ in range(3):
        loop.step()
    assert seen == [("before", 0.015), ("after", 0.015), ("before", 0.025), ("after", 0.025),
                    ("before", 0.035), ("after", 0.035)]
    assert loop.stats.scans == 3 and loop.stats.overruns == 0


def test_a_stage_timer_is_told_each_stage_by_name_in_scan_order():
    clock = SimulatedClock(10 * MS)
    timed = []
    loop = ScanLoop(motor_core(), clock, [BoundStage("first", lambda c, now: None),
                                          BoundStage(CORE_PASS, None),
                                          BoundStage("last", lambda c, now: None)],
                    stage_timer=lambda name, ns: timed.append((name, ns >= 0)))
    loop.step()
    loop.stage_timer = None  # and cleared between scans: no more calls
    loop.step()
    assert timed == [("first", True), (CORE_PASS, True), ("last", True)]
    assert loop.stage_names == ("first", CORE_PASS, "last")


def test_a_scan_without_exactly_one_core_pass_is_refused():
    for stages in ((), (BoundStage("x", lambda c, now: None),), CORE_ONLY * 2):
        with pytest.raises(ValueError, match="exactly one core pass"):
            ScanLoop(motor_core(), SimulatedClock(10 * MS), stages)


def test_an_overrun_skips_the_missed_deadlines_counts_them_and_never_bursts():
    clock = SimulatedClock(10 * MS, start_ns=0)
    overruns, deadlines, dts = [], [], []
    core = motor_core()
    original_scan = core.scan

    def scan(now, dt):
        deadlines.append(round(now * 1000))
        dts.append(round(dt * 1000))
        original_scan(now, dt)

    core.scan = scan
    loop = ScanLoop(core, clock, on_overrun=lambda missed, now: overruns.append((missed, now)))
    loop.step()  # 10 ms
    clock.stall(25 * MS)  # this scan takes 25 ms: the 20 and 30 ms deadlines pass
    loop.step()  # 20 ms, ends at 45 ms
    loop.step()
    loop.step()
    assert deadlines == [10, 20, 50, 60]  # no scan at 30 or 40 ms: skipped, not caught up
    assert dts == [10, 10, 30, 10]  # the core integrates the skipped time
    assert overruns == [(2, 0.05)]
    assert (loop.stats.overruns, loop.stats.missed) == (1, 2)
    assert loop.stats.execution.maximum == 25 * MS


def test_thermal_state_integrates_the_same_through_an_overrun():
    """Skipping deadlines loses no heating: theta after 1 s is the same either way."""
    thetas = []
    for stalls in (False, True):
        clock = SimulatedClock(10 * MS, start_ns=0)
        core = motor_core()
        loop = ScanLoop(core, clock, [BoundStage("stamp", lambda c, now: c.thermal_inputs
                                                 .__setitem__("stamp", now)), *CORE_ONLY])
        while clock.deadline_ns < 1000 * MS:
            if stalls and loop.stats.scans % 7 == 3 and clock.deadline_ns < 900 * MS:
                clock.stall(35 * MS)
            loop.step()
        assert clock.deadline_ns == 1000 * MS
        thetas.append(float(core.thermal_outputs["theta"][0]))
    assert thetas[1] == pytest.approx(thetas[0], rel=1e-12)


def test_lateness_and_execution_statistics():
    clock = SimulatedClock(10 * MS)
    loop = ScanLoop(motor_core(), clock)
    for k in range(100):
        clock.late((k % 10) * 1000)  # 0..9 us late
        clock.stall(200_000 if k == 50 else 100_000)
        loop.step()
    s = loop.stats.summary()
    assert s["scans"] == 100
    assert s["lateness"]["min"] == 0 and s["lateness"]["max"] == 9000
    assert s["lateness"]["p50"] == pytest.approx(4000, rel=0.02)
    assert s["execution"]["p50"] == pytest.approx(100_000, rel=0.02)
    assert s["execution"]["max"] == 200_000


def test_the_histogram_percentiles_are_within_its_resolution():
    values = np.random.default_rng(3).lognormal(mean=10.0, sigma=1.5, size=20000).astype(int)
    h = _timing.Histogram()
    for v in values:
        h.record(int(v))
    for p in (50.0, 99.0, 99.9):
        exact = np.percentile(values, p, method="inverted_cdf")
        assert h.percentile(p) == pytest.approx(exact, rel=0.016), p
    assert h.minimum == values.min() and h.maximum == values.max()
    assert h.mean == pytest.approx(values.mean())


def test_the_real_ticker_keeps_the_grid_and_skips_after_a_stall():
    ticker = _timing.Ticker(2 * MS)
    start = ticker.deadline_ns
    first = [ticker.wait() for _ in range(5)]
    deadlines = [d for d, _, _ in first]
    assert all((d - start) % (2 * MS) == 0 for d in deadlines)  # on the grid
    assert deadlines == sorted(set(deadlines))  # strictly later each time, never a repeat
    assert all(late >= 0 for _, late, _ in first)
    # (a loaded machine may already have overrun one of those 2 ms periods: counted apart)
    overruns, missed_before = ticker.overruns, ticker.missed_total
    time.sleep(0.0072)  # a stall of 3.6 periods
    called = _timing.monotonic_ns()
    deadline, _, missed = ticker.wait()
    assert missed >= 3 and (deadline - start) % (2 * MS) == 0
    # the deadlines skipped are the ones passed, no more: the next one on the grid after the
    # last, missed + 1 periods on, still ahead when the wait began (no catch-up burst); how
    # far ahead depends on how long this thread waited for a CPU, so that is not asserted
    assert deadline - deadlines[-1] == (missed + 1) * 2 * MS and deadline > called
    assert ticker.overruns == overruns + 1 and ticker.missed_total == missed_before + missed


@pytest.mark.e2e
def test_lateness_includes_the_wait_for_the_interpreter_lock():
    """A Python thread that holds the interpreter lock delays the scan after its wake-up: that
    delay is lateness (the scan starts late), never hidden between lateness and execution."""
    import sys
    import threading

    stop = threading.Event()

    def hog() -> None:  # pure Python: holds the lock for whole switch intervals
        while not stop.is_set():
            sum(range(1000))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    try:
        ticker = _timing.Ticker(5_000_000)
        hidden = []
        for _ in range(40):
            deadline, late, _ = ticker.wait()
            hidden.append(time.monotonic_ns() - deadline - late)  # seen late, not reported
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert max(hidden) < 10_000_000, f"{max(hidden) / 1e6:.1f} ms of lateness not reported"


def test_the_real_clock_runs_the_loop():
    loop = ScanLoop(motor_core(), MonotonicClock(2 * MS))
    loop.run(lambda: True, max_scans=20)
    assert loop.stats.scans == 20 and loop.stats.execution.maximum > 0


def test_real_time_options_apply_or_warn_never_fail(caplog):
    results = apply(priority=10, lock_memory=False, cpu=0, timer_slack_ns=1)
    by_option = {r.option: r for r in results}
    assert by_option["timer slack"].ok
    assert by_option["cpu affinity"].ok
    assert "SCHED_FIFO" in by_option  # applied as root, refused (with a warning) otherwise
    import os
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # leave the test runner as it was
    os.sched_setaffinity(0, range(os.cpu_count()))
    refused = apply(cpu=10_000)
    assert not refused[-1].ok and "CPU 10000" in refused[-1].detail


class FakeTime:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_the_watchdog_drops_healthy_on_a_stall_and_feeds_systemd_only_while_scanning():
    clock = FakeTime()
    changes, feeds = [], []
    dog = Watchdog(0.2, lambda ok, why: changes.append((ok, why)),
                   feed_systemd=lambda: feeds.append(clock.t), now=clock)
    assert not dog.check() and changes == []  # no scan yet: not healthy, systemd not fed
    dog.beat()
    assert dog.check() and changes == [(True, "scans running")]
    clock.t += 0.15
    assert dog.check()
    clock.t += 0.1  # 250 ms since the last scan
    assert not dog.check()
    assert changes[-1] == (False, "no scan for 250 ms (limit 200 ms)")
    fed = len(feeds)
    clock.t += 1.0
    dog.check()
    assert len(feeds) == fed  # a stalled scan does not feed systemd
    dog.beat()
    assert dog.check() and changes[-1] == (True, "scans running") and dog.stalls == 1


@pytest.mark.e2e
def test_the_watchdog_thread_notices_a_real_stall():
    changes = []
    dog = Watchdog(0.05, lambda ok, why: changes.append(ok))
    dog.beat()
    dog.start()
    for _ in range(10):
        time.sleep(0.01)
        dog.beat()
    time.sleep(0.2)  # the scan stalls
    dog.stop()
    assert changes[:2] == [True, False]


def test_helper_threads_leave_the_scans_real_time_priority(tmp_path):
    """Threads inherit SCHED_FIFO from the scan's thread; the event writer and the checkpoint
    thread go back to normal priority (they take the interpreter lock the scan needs)."""
    import threading

    from softrelay.records.events import EventRecorder
    from softrelay.records.thermal_memory import Checkpointer

    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except PermissionError:
        pytest.fail("needs CAP_SYS_NICE (root), as make test has in CI")
    try:
        recorder = EventRecorder(1024)
        keeper = Checkpointer(tmp_path / "x.json")
        time.sleep(0.1)
        threads = {t.name: t for t in threading.enumerate()}
        for name in ("event-writer", "checkpoint"):
            assert os.sched_getscheduler(threads[name].native_id) == os.SCHED_OTHER, name
        assert os.sched_getscheduler(0) == os.SCHED_FIFO  # the caller keeps its own
        recorder.close()
        keeper.close()
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
