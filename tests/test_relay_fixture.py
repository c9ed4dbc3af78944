"""The test relay (``support.relays.running``) is stopped whatever the test does: a failing
test leaves no instance lock, shared memory or pins behind for the next one."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.config import load
from softrelay.relay.build import build_relay

from support.relays import fast_config, running


def test_a_failing_test_still_stops_its_relay(tmp_path):
    path = fast_config(tmp_path)
    with pytest.raises(AssertionError), running(path, companion=False) as relay:
        relay.loop.step()
        assert relay.running
        raise AssertionError("the test fails inside")
    assert not relay.running
    again = build_relay(load(path), str(path), factory=MockFactory())  # the lock is free
    again.stop()


def test_the_relay_runs_its_companion_unless_told_not_to(tmp_path):
    path = fast_config(tmp_path)
    with running(path, companion=False) as relay:
        assert relay.helpers.companion is None
        relay.loop.step()
        assert relay.loop.stats.scans == 1
