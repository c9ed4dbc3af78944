"""The command a new user runs first (``make run``) shows the relay protecting."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.e2e
def test_demo_shows_alarm_trip_inhibit_and_a_hot_joint():
    result = subprocess.run(
        [sys.executable, "-m", "softrelay", "demo", "--seconds", "900"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    out = result.stdout
    assert "compiled core" in out
    for motor in ("ALARM1", "ALARM2", "TRIP", "START_INHIBIT"):
        assert motor in out, motor
    for busbar in ("WARNING", "CRITICAL", "IMBALANCE", "JOINT"):
        assert busbar in out, busbar
    assert "C-A" in out  # the hot phase's pair is named
    assert "RESET_REJECTED" not in out  # the operator waits until the relay accepts a reset
