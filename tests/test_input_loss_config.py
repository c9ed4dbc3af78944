"""The input-loss settings in the configuration: derived delays, declared policies, what
``softrelay check`` says, and how they reach the core's tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from softrelay.cli.summary import describe
from softrelay.config import demo_path, parse
from softrelay.core import BusbarSettings, ThermalSettings
from softrelay.core.layout import InputLoss
from softrelay.core.settings import (
    INPUT_LOSS_DELAY_UNRESOLVED,
    pack_busbar,
    pack_thermal,
)

DEMO = demo_path().read_text()


def edited(old: str, new: str) -> str:
    assert old in DEMO, old
    return DEMO.replace(old, new, 1)


def point(config, name: str):
    return next(p for p in config.points if p.name == name)


def test_a_delay_left_out_is_three_polls_of_the_slowest_measuring_signal():
    """The demo's motor1 reads its currents every 50 ms on a bus with a 100 ms timeout (a
    timed-out read holds the next poll back): 3 x 100 ms. The busbar's phases are polled
    every 500 ms: 1.5 s. The table gets the same numbers."""
    config = parse(DEMO)
    assert point(config, "motor1").settings.input_loss_delay == pytest.approx(0.3)
    assert point(config, "bus1").settings.input_loss_delay == pytest.approx(1.5)
    table = pack_thermal([point(config, "motor1").settings])
    assert table["input_loss_delay"][0] == pytest.approx(0.3)


def test_a_slow_poll_makes_a_longer_delay_and_an_explicit_delay_is_kept():
    text = edited("address: m1.current.a, poll: 0.05", "address: m1.current.a, poll: 2.0")
    assert point(parse(text), "motor1").settings.input_loss_delay == pytest.approx(6.0)
    text = edited("      latch: false", "      input_loss_delay: 10.0\n      latch: false")
    assert point(parse(text), "motor1").settings.input_loss_delay == 10.0


def test_the_floor_is_three_scan_periods():
    text = edited("period: 0.01", "period: 1.0")
    assert point(parse(text), "motor1").settings.input_loss_delay == pytest.approx(3.0)


def test_check_states_each_points_blind_policy():
    text = edited("      latch: false",
                  "      input_loss: hold\n      input_loss_hold: 45\n      latch: false")
    lines = describe(parse(text))
    assert ("    input loss: measurement lost after 0.3 s of unusable currents; while blind "
            "(hold): heats at the last good I_eq for at most 45 s, then frozen") in lines
    assert ("    input loss: measurement lost after 0.3 s of unusable currents; while blind "
            "(freeze): theta frozen") in lines  # motor2, the default
    assert ("    input loss: measurement lost after 1.5 s of an excluded phase; ambient lost: "
            "rises over 40 C; absolute limits warning 90 C, critical 105 C") in lines


def test_absolute_limits_switched_off_with_null_are_nan_in_the_core():
    config = parse(DEMO)
    bus = point(config, "bus1").settings.model_copy(update={"warning_abs": None,
                                                             "critical_abs": None})
    lines = describe(config.model_copy(update={"points": (
        *config.points[:2], point(config, "bus1").model_copy(update={"settings": bus}))}))
    assert any(line.endswith("absolute limits off") for line in lines)
    table = pack_busbar([bus])
    assert math.isnan(table["warning_abs"][0]) and math.isnan(table["critical_abs"][0])


def test_defaults_and_packing():
    s = ThermalSettings(i_b=10.0, t_heat=60.0, t_cool=180.0)
    assert (s.input_loss_delay, s.input_loss, s.input_loss_hold) == (None, "freeze", 60.0)
    table = pack_thermal([s, s.model_copy(update={"input_loss": "hold"})])
    assert table["input_loss"].tolist() == [InputLoss.FREEZE, InputLoss.HOLD]
    assert np.all(table["input_loss_delay"] == INPUT_LOSS_DELAY_UNRESOLVED)
    b = BusbarSettings()
    assert (b.ambient_fallback, b.warning_abs, b.critical_abs) == (40.0, 90.0, 105.0)
    assert pack_busbar([b])["critical_abs"][0] == 105.0


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (dict(warning_abs=110.0, critical_abs=100.0), ["warning_abs", "critical_abs"]),
        (dict(critical_abs=-45.0, warning_abs=None), ["critical_abs", "valid_min"]),
        (dict(input_loss_delay=-1.0), ["input_loss_delay"]),
        (dict(ambient_fallback=200.0), ["ambient_fallback"]),
    ],
)
def test_bad_busbar_input_loss_settings_name_the_setting(changes, words):
    with pytest.raises(ValidationError) as caught:
        BusbarSettings(**changes)
    for word in words:
        assert word in str(caught.value)


def test_a_bad_blind_policy_names_the_choices():
    with pytest.raises(ValidationError) as caught:
        ThermalSettings(i_b=10.0, t_heat=60.0, t_cool=180.0, input_loss="guess")
    assert "input_loss" in str(caught.value) and "'freeze' or 'hold'" in str(caught.value)
