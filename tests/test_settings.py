"""Bad settings are refused with a message that names the setting and the reason."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from softrelay.core import BusbarSettings, InputMode, ThermalSettings
from softrelay.core.settings import pack_busbar, pack_thermal

MOTOR = dict(i_b=100.0, t_heat=600.0, t_cool=1800.0)


@pytest.mark.parametrize(
    ("changes", "names", "reason"),
    [
        (dict(t_cool=300.0), ["t_cool", "t_heat"], "must not be shorter"),
        (dict(i_b=-5.0), ["i_b"], "greater than 0"),
        (dict(i_b=0.0), ["i_b"], "greater than 0"),
        (dict(t_heat=0.0), ["t_heat"], "greater than 0"),
        (dict(theta_al2=1.3), ["theta_al2", "theta_trip"], "must be below"),
        (dict(theta_al1=1.1), ["theta_al1", "theta_al2"], "must be below"),
        (dict(theta_inhibit=1.2), ["theta_inhibit", "theta_trip"], "must be below"),
        (dict(theta_reset=1.25), ["theta_reset", "theta_trip"], "must be below"),
        (dict(kst=3.5), ["kst"], "less than or equal to 3"),
        (dict(kst=0.9), ["kst"], "greater than or equal to 1"),
        (dict(k2=-1.0), ["k2"], "greater than or equal to 0"),
        (dict(start_current=0.05), ["start_current"], "greater than 0.1"),
        (dict(theta_initial=-0.1), ["theta_initial"], "greater than or equal to 0"),
        (dict(dropout_ratio=1.1), ["dropout_ratio"], "less than or equal to 1"),
        (dict(input_mode="fourier"), ["input_mode"], "'phasors', 'magnitudes' or 'samples'"),
        (dict(t_heat=float("nan")), ["t_heat"], "finite number"),
        (dict(i_b=float("inf")), ["i_b"], "finite number"),
        (dict(tau=600.0), ["tau"], "Extra inputs are not permitted"),
    ],
)
def test_bad_thermal_settings_name_the_setting(changes, names, reason):
    with pytest.raises(ValidationError) as caught:
        ThermalSettings(**{**MOTOR, **changes})
    text = str(caught.value)
    for name in names:
        assert name in text
    assert reason in text


@pytest.mark.parametrize(
    ("changes", "names", "reason"),
    [
        (dict(warning_delta=30.0, critical_delta=15.0), ["warning_delta", "critical_delta"],
         "must be below"),
        (dict(valid_min=130.0), ["valid_min", "valid_max"], "must be below"),
        (dict(imbalance_max=0.0), ["imbalance_max"], "greater than 0"),
        (dict(hyst_delta=6.0), ["hyst_delta", "imbalance_max"], "must be below"),
        (dict(hyst_rate=5.0), ["hyst_rate", "rate_limit"], "must be below"),
        (dict(pickup_warning=-1.0), ["pickup_warning"], "greater than or equal to 0"),
        (dict(kalman_r=0.0), ["kalman_r"], "greater than 0"),
        (dict(joint_ratio=1.0), ["joint_ratio"], "greater than 1"),
        (dict(joint_balance=1.0), ["joint_balance"], "less than 1"),
        (dict(erratic_gate=1.0), ["erratic_gate"], "greater than or equal to 2"),
        (dict(warning=15.0), ["warning"], "Extra inputs are not permitted"),
    ],
)
def test_bad_busbar_settings_name_the_setting(changes, names, reason):
    with pytest.raises(ValidationError) as caught:
        BusbarSettings(**changes)
    text = str(caught.value)
    for name in names:
        assert name in text
    assert reason in text


def test_defaults_are_those_of_the_seed_documents():
    thermal = ThermalSettings(**MOTOR)
    assert thermal.theta_trip == 1.2 and thermal.kst == 1.0
    busbar = BusbarSettings()
    assert (busbar.warning_delta, busbar.critical_delta, busbar.imbalance_max) == (15, 30, 5)
    assert (busbar.valid_min, busbar.valid_max, busbar.sentinel) == (-40, 125, -32768)


def test_packing_keeps_every_value_and_the_order():
    points = [ThermalSettings(**{**MOTOR, "i_b": 10.0 * (k + 1), "input_mode": mode,
                                 "latch": k % 2 == 0})
              for k, mode in enumerate(("phasors", "magnitudes", "samples"))]
    table = pack_thermal(points)
    assert table["i_b"].tolist() == [10.0, 20.0, 30.0]
    assert table["input_mode"].tolist() == [InputMode.PHASORS, InputMode.MAGNITUDES,
                                            InputMode.SAMPLES]
    assert table["latch"].tolist() == [1, 0, 1]
    for point, row in zip(points, table, strict=True):
        for name, value in point.model_dump().items():
            if name not in ("input_mode", "latch", "input_loss", "input_loss_delay"):
                assert row[name] == value, name
    bars = pack_busbar([BusbarSettings(warning_delta=12.0), BusbarSettings()])
    assert bars["warning_delta"].tolist() == [12.0, 15.0]
    assert np.all(bars["sentinel"] == -32768.0)
