"""Settings changed in service: validated, applied between scans, recorded, state kept."""

from __future__ import annotations

import math

import pytest

from softrelay.core import BusbarSettings, ProtectionCore, ThermalSettings
from softrelay.relay.settings_changes import SettingsQueue

from support.core import set_currents

MOTOR = ThermalSettings(i_b=100, t_heat=60, t_cool=180)


def test_a_change_applies_at_the_next_scan_keeps_theta_and_is_recorded():
    events = []
    core = ProtectionCore([MOTOR], [BusbarSettings()])
    queue = SettingsQueue([("m1", MOTOR)], [("b1", BusbarSettings())],
                          record=lambda *e: events.append(e))
    set_currents(core, 200.0, now=0.0)
    core.scan(1.0, 1.0)
    theta = float(core.thermal_outputs["theta"][0])
    queue.put("m1", MOTOR.model_copy(update={"t_heat": 120.0, "k2": 2.0}), source="modbus")
    assert core.thermal_settings["t_heat"][0] == 60.0  # nothing until the scan applies it
    queue.apply(core, 2.0)
    core.thermal_inputs["stamp"] = 2.0
    core.scan(2.0, 1.0)
    assert core.thermal_settings["t_heat"][0] == 120.0
    expected = 4.0 + (theta - 4.0) * math.exp(-1.0 / 120.0)  # heats on from where it was
    assert core.thermal_outputs["theta"][0] == pytest.approx(expected)
    assert events == [("settings", "m1", "from modbus: t_heat 60.0 -> 120.0, k2 0.0 -> 2.0",
                       2.0)]


def test_a_busbar_change():
    core = ProtectionCore(busbar=[BusbarSettings()])
    queue = SettingsQueue([], [("b1", BusbarSettings())])
    queue.put("b1", BusbarSettings(warning_delta=12.0))
    queue.apply(core, 0.0)
    assert core.busbar_settings["warning_delta"][0] == 12.0


def test_bad_changes_are_refused_before_they_reach_a_scan():
    queue = SettingsQueue([("m1", MOTOR)], [("b1", BusbarSettings())])
    with pytest.raises(ValueError, match="no point named 'm9'"):
        queue.put("m9", MOTOR)
    with pytest.raises(ValueError, match="b1 is a busbar point: its settings are BusbarSettings"):
        queue.put("b1", MOTOR)
    unchecked = MOTOR.model_copy(update={"t_cool": 1.0})  # pydantic does not validate this
    with pytest.raises(ValueError, match=r"t_cool .* must not be shorter than t_heat"):
        queue.put("m1", unchecked)
