"""Self-supervision and link supervision: what drops the healthy contact, and the link events.

The relay never says "healthy" while it cannot protect: a scan stall and a failed self-test
always drop the contact, lost measurements do by the declared default, a lost link or the
telemetry only when the configuration asks. Every cause shows in the supervision word whether
or not it drops the contact, so the DCS can tell "blind" from "cool".
"""

from __future__ import annotations

import errno
import math
import time

import numpy as np
import pytest

from softrelay.config.health import Healthy
from softrelay.core import Quality
from softrelay.field.device import Device, link_fault
from softrelay.field.worker import Polled, PollSchedule
from softrelay.image.signals import BUS
from softrelay.supervision.health import CAUSES, Supervision
from softrelay.supervision.links import LinkWatcher

from support.relays import running as running_relay


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, kind: str, source: str, text: str = "", mono: float | None = None):
        self.events.append((kind, source, text))


def running(drop_on=("measurement_lost",), checks=()) -> tuple[Supervision, list]:
    changes: list[tuple[bool, str]] = []
    s = Supervision(drop_on, lambda ok, why: changes.append((ok, why)), checks)
    s.set("scan_stall", False, "scans running")
    assert s.healthy and changes == [(True, "scans running")]
    changes.clear()
    return s, changes


def bit(cause: str) -> int:
    return 1 << CAUSES.index(cause)


def test_the_relay_is_not_healthy_before_it_scans():
    s = Supervision((), lambda ok, why: None)
    assert not s.healthy and s.word == bit("scan_stall")


def test_lost_measurements_drop_the_contact_by_default_and_say_which_point():
    s, changes = running(Healthy().drop_on)
    s.set("measurement_lost", True, "motor1")
    assert not s.healthy and changes == [(False, "measurement lost: motor1")]
    s.set("measurement_lost", True, "motor1")  # no change: no second report
    assert len(changes) == 1
    s.set("measurement_lost", False)
    assert s.healthy and changes[-1] == (True, "measurement lost cleared")
    assert s.word == 0


def test_a_link_down_is_shown_but_drops_the_contact_only_when_the_policy_says_so():
    s, changes = running(Healthy().drop_on)
    s.set("link_down", True, "gw1")
    assert s.healthy and not changes and s.word == bit("link_down")
    strict, changes = running(("measurement_lost", "link_down"))
    strict.set("link_down", True, "gw1")
    assert not strict.healthy and changes == [(False, "link down: gw1")]


def test_a_policy_without_measurement_lost_keeps_the_contact_but_shows_the_cause():
    s, changes = running(())
    s.set("measurement_lost", True, "bus1")
    assert s.healthy and not changes and s.word == bit("measurement_lost")


def test_a_second_cause_while_unhealthy_is_reported_and_clearing_one_keeps_the_other():
    s, changes = running(("measurement_lost", "link_down"))
    s.set("link_down", True, "gw1")
    s.set("measurement_lost", True, "motor1")
    assert changes[-1] == (False, "measurement lost: motor1; link down: gw1")
    s.set("link_down", False)
    assert not s.healthy and changes[-1] == (False, "measurement lost: motor1")
    s.set("measurement_lost", False)
    assert s.healthy


def test_a_failed_self_test_always_drops_the_contact_and_names_the_part():
    trouble = {"events": None}
    s, changes = running((), checks=[("self_test", "event writer", lambda: trouble["events"])])
    s.poll()
    assert s.healthy and not changes
    trouble["events"] = "cannot write /x/events.jsonl: read-only file system"
    s.poll()
    assert not s.healthy
    assert changes == [(False, "self-test failed: event writer: cannot write "
                               "/x/events.jsonl: read-only file system")]
    trouble["events"] = None
    s.poll()
    assert s.healthy and changes[-1] == (True, "self-test failed cleared")


def test_a_check_that_raises_counts_as_failed():
    def broken() -> str | None:
        raise RuntimeError("boom")

    s, changes = running((), checks=[("self_test", "thermal memory", broken)])
    s.poll()
    assert not s.healthy and "thermal memory: check raised RuntimeError('boom')" in changes[-1][1]


@pytest.mark.parametrize("cause", ["scan_stall", "self_test", "bogus"])
def test_the_policy_names_only_optional_causes(cause):
    with pytest.raises(ValueError, match=f"'{cause}' is not a cause to choose"):
        Healthy(drop_on=(cause,))


# ---------------------------------------------------------------- links


def buses(*rows: tuple[int, int, bytes]) -> np.ndarray:
    table = np.zeros(len(rows), BUS)
    for i, (down, downs, reason) in enumerate(rows):
        table[i]["down"], table[i]["downs"], table[i]["reason"] = down, downs, reason
    return table


def test_a_link_going_down_and_up_is_an_event_pair_with_the_reason():
    rec = Recorder()
    w = LinkWatcher(["gw1", "ir"], rec)
    assert not w.update(buses((0, 0, b""), (0, 0, b"")), 1.0)
    assert w.update(buses((1, 1, b"refused: connect: refused or unreachable"), (0, 0, b"")), 2.0)
    assert rec.events == [("fault", "bus.gw1", "link down: refused: connect: refused or "
                                               "unreachable; down 1 time(s) since start")]
    assert w.names_down == ["gw1"]
    assert not w.update(buses((1, 1, b"refused: ..."), (0, 0, b"")), 3.0)  # still down
    w.update(buses((0, 1, b"refused: ..."), (0, 0, b"")), 4.0)
    assert rec.events[-1] == ("fault cleared", "bus.gw1", "link up") and w.names_down == []


def test_a_link_that_flapped_between_two_looks_is_still_reported():
    rec = Recorder()
    w = LinkWatcher(["gw1"], rec)
    w.update(buses((0, 1, b"timeout: meter")), 1.0)
    assert [e[0] for e in rec.events] == ["fault", "fault cleared"]
    assert "timeout: meter" in rec.events[0][2]


def test_the_poll_schedule_takes_the_link_down_on_a_read_that_failed_outright():
    s = PollSchedule([Polled(0, "a", 0.1), Polled(1, "b", 0.1)])
    io, good = (math.nan, Quality.IO_ERROR), (1.0, Quality.GOOD)
    s.record(s.signals, [good, io], 0.0, 0.0, "NACK: b")  # one chip: not the link
    assert not s.down and s.downs == 0
    s.record(s.signals, [io, io], 1.0, 1.0, "timeout: a")
    assert s.down and s.downs == 1 and s.reason == "timeout: a"
    s.record(s.signals, [io, io], 2.0, 2.0, "timeout: b")  # still down: the first reason
    assert s.downs == 1 and s.reason == "timeout: a"
    s.record(s.signals, [good, io], 3.0, 3.0, "")
    assert not s.down and s.downs == 1


@pytest.mark.parametrize(("exc", "kind"), [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused"),
    (TimeoutError("timed out"), "timeout"),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "connection lost"),
    (OSError(errno.EREMOTEIO, "no device at 0x5a"), "NACK"),
    (ValueError("CRC mismatch"), "garbage"),
    (OSError(errno.EIO, "bus error"), "I/O error"),
])
def test_a_failure_is_named_in_a_field_engineers_words(exc, kind):
    assert link_fault(exc) == kind


def test_a_gateway_exception_is_named():
    assert link_fault(exception_code=0x0B) == "exception 0x0B (no answer behind the gateway)"
    assert link_fault(exception_code=0x02) == "exception 0x02"


def test_a_device_failure_carries_its_kind_in_the_last_error():
    class Nacking(Device):
        def _read(self, addresses):
            raise OSError(errno.EREMOTEIO, "address 0x48 not acknowledged")

    d = Nacking("ir", 0.1)
    assert d.read(["amb.temperature"])[0][1] == Quality.IO_ERROR
    assert d.last_error.startswith("NACK: OSError")


def test_an_unusable_state_directory_is_a_failed_self_test_on_the_healthy_contact(tmp_path):
    """The event file and the thermal memory cannot be written (the state directory's place
    is taken by a regular file): the relay protects on, and its healthy contact drops,
    naming both, whatever the policy (a failed self-test always drops it)."""
    from pathlib import Path

    from gpiozero.pins.mock import MockFactory


    blocker = tmp_path / "state"
    blocker.write_text("not a directory\n")
    path = tmp_path / "fast.yaml"
    path.write_text((Path(__file__).parent / "configs" / "fast.yaml").read_text()
                    .replace("STATE_DIR", str(blocker))
                    + "healthy: {drop_on: []}\n")
    pins = MockFactory()
    with running_relay(path, companion=False, factory=pins) as relay:
        relay.checkpointer.submit(relay.memory.copy())
        deadline = time.monotonic() + 10.0

        def verdicts() -> list[str]:
            return [e.text for e in relay.events.ring if e.source == "healthy"]

        while not any("thermal memory" in v for v in verdicts()):
            assert time.monotonic() < deadline, verdicts()
            relay.loop.step()
        verdict = next(v for v in verdicts() if "thermal memory" in v)
        assert verdict.startswith("NOT healthy: ") and "self-test failed: " in verdict
        assert "event writer: cannot write" in verdict or any(
            "event writer: cannot write" in v for v in verdicts())
        assert not relay.supervision.healthy and not pins.pin(24).state
        assert relay.supervision.word & bit("self_test")
