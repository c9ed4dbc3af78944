"""Settings of the protected points: validated models and their packing into the core's tables.

A setting reaches the core only through these models, so a bad value is refused here, with a
message that names the setting and the reason, before it can reach a scan. The configuration
loader and, later, settings written over Modbus go through the same validation.

Never touches a running core: packing produces a new table that the caller swaps in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from softrelay.core.layout import BUSBAR_SETTINGS, THERMAL_SETTINGS, InputLoss, InputMode

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

INPUT_MODES: dict[str, InputMode] = {
    "phasors": InputMode.PHASORS,
    "magnitudes": InputMode.MAGNITUDES,
    "samples": InputMode.SAMPLES,
}
INPUT_LOSS: dict[str, InputLoss] = {"freeze": InputLoss.FREEZE, "hold": InputLoss.HOLD}


#: s; the input_loss_delay of a point packed without a configuration to derive it from
#: (3 x a 1 s poll, the usual field poll)
INPUT_LOSS_DELAY_UNRESOLVED = 3.0
#: C; the ambient Siemens and ABB busbar/thermal relays assume when the sensor is lost (the
#: hottest ambient a switchgear assembly is designed for in IEC 61439-1, 35 C mean over 24 h
#: and 40 C peak)
AMBIENT_FALLBACK_C = 40.0
#: C; IEC 61439-1 verifies an assembly's temperature rise over a 35 C reference ambient and
#: limits terminals for external insulated conductors to a 70 K rise: 105 C is the highest a
#: conductor connection may reach in a design-verified assembly, whatever the ambient reads.
#: A conductor there is past its design: critical (the issue's case, phases at 108-110 C
#: with the ambient lost, alarms critical on it).
CRITICAL_ABS_C = 105.0
#: C; 15 C before critical_abs, the spacing the default rise elements keep (15 / 30 C over
#: ambient); 90 C is also the continuous conductor limit of the XLPE/EPR cables usually
#: landed on those terminals (IEC 60502-1).
WARNING_ABS_C = 90.0


def _below(low_name: str, low: float, high_name: str, high: float) -> None:
    """Raise unless ``low < high``, naming both settings."""
    if not low < high:
        raise ValueError(f"{low_name} ({low:g}) must be below {high_name} ({high:g})")


class ThermalSettings(BaseModel):
    """Thermal replica (ANSI 49) of one motor, feeder or transformer, IEC 60255-8/-149.

    theta is in per-unit of the base thermal capacity: steady running at I_B gives 1.0.
    """

    model_config = _MODEL_CONFIG

    i_b: float = Field(gt=0, description="base current I_B, A")
    t_heat: float = Field(gt=0, description="heating time constant T+, s")
    t_cool: float = Field(gt=0, description="cooling time constant T- (stopped), s; >= T+")
    k2: float = Field(0.0, ge=0, le=10, description="negative-sequence weighting K2")
    kst: float = Field(1.0, ge=1.0, le=3.0, description="start factor KST")
    start_current: float = Field(
        1.5, gt=0.1, le=20, description="start detected at or above this, per-unit of I_B"
    )
    start_time_max: float = Field(10.0, gt=0, description="longest start KST applies to, s")
    theta_trip: float = Field(1.2, gt=0, le=10, description="trip level, per-unit")
    theta_al1: float = Field(0.9, gt=0, description="alarm 1 level, per-unit")
    theta_al2: float = Field(1.05, gt=0, description="alarm 2 level, per-unit")
    theta_inhibit: float = Field(0.8, gt=0, description="start inhibit level, per-unit")
    theta_initial: float = Field(0.0, ge=0, le=100, description="theta at first start")
    theta_reset: float = Field(0.7, ge=0, description="a trip resets only below this")
    dropout_ratio: float = Field(0.97, gt=0.5, le=1.0, description="alarm dropout / pickup")
    stale_limit: float = Field(2.0, gt=0, description="currents older than this are a fault, s")
    input_mode: Literal["phasors", "magnitudes", "samples"] = "phasors"
    latch: bool = Field(True, description="trip latched until reset")
    input_loss_delay: float | None = Field(
        None, ge=0, le=3600, description="s of unusable currents before measurement lost; "
        "none: derived when the configuration is validated (3 x the longest poll period of "
        "the point's signals, at least 3 scan periods)")
    input_loss: Literal["freeze", "hold"] = Field(
        "freeze", description="theta while the currents are unusable: freeze it, or hold "
        "(heat or cool at the last good I_eq for at most input_loss_hold, then freeze)")
    input_loss_hold: float = Field(
        60.0, ge=0, le=86400, description="longest the hold policy heats at the last good "
        "I_eq, s from the loss of the currents")

    @model_validator(mode="after")
    def _consistent(self) -> ThermalSettings:
        if self.t_cool < self.t_heat:
            raise ValueError(
                f"t_cool (T-, {self.t_cool:g} s) must not be shorter than "
                f"t_heat (T+, {self.t_heat:g} s): a stopped machine cools more slowly"
            )
        _below("theta_al1", self.theta_al1, "theta_al2", self.theta_al2)
        _below("theta_al2", self.theta_al2, "theta_trip", self.theta_trip)
        _below("theta_inhibit", self.theta_inhibit, "theta_trip", self.theta_trip)
        _below("theta_reset", self.theta_reset, "theta_trip", self.theta_trip)
        return self


class BusbarSettings(BaseModel):
    """Busbar phase comparator: three phase conductor temperatures against an ambient."""

    model_config = _MODEL_CONFIG

    warning_delta: float = Field(15.0, gt=0, description="warning rise over ambient, C")
    critical_delta: float = Field(30.0, gt=0, description="critical rise over ambient, C")
    imbalance_max: float = Field(5.0, gt=0, description="phase-to-phase delta alarm, C")
    rate_limit: float = Field(3.0, gt=0, description="rate-of-rise alarm, C/min")
    hyst_delta: float = Field(1.0, ge=0, description="dropout hysteresis, C")
    hyst_rate: float = Field(0.5, ge=0, description="rate dropout hysteresis, C/min")
    pickup_warning: float = Field(10.0, ge=0, description="s")
    pickup_critical: float = Field(5.0, ge=0, description="s")
    pickup_imbalance: float = Field(30.0, ge=0, description="s")
    pickup_rate: float = Field(30.0, ge=0, description="s")
    pickup_joint: float = Field(60.0, ge=0, description="s")
    valid_min: float = Field(-40.0, description="lowest credible reading, C")
    valid_max: float = Field(125.0, description="highest credible reading, C")
    sentinel: float = Field(-32768.0, description="the device's no-reading value")
    stale_limit: float = Field(30.0, gt=0, description="readings older than this are stale, s")
    kalman_r: float = Field(0.5, gt=0, description="measurement noise std deviation, C")
    kalman_q: float = Field(1e-6, gt=0, description="acceleration noise density, C^2/s^3")
    erratic_gate: float = Field(5.0, ge=2, description="outlier gate, standard deviations")
    erratic_limit: float = Field(3.0, gt=0, description="outlier score declaring erratic")
    joint_ratio: float = Field(1.5, gt=1, description="rise over expected rise, suspect joint")
    joint_min_current: float = Field(1.0, gt=0, description="A; lighter load: not evaluated")
    joint_balance: float = Field(0.1, gt=0, lt=1, description="(max-min)/max of currents")
    joint_min_excess: float = Field(3.0, ge=0, description="C above expected, at least")
    input_loss_delay: float | None = Field(
        None, ge=0, le=86400, description="s a phase channel may be excluded before "
        "measurement lost; none: derived when the configuration is validated (3 x the "
        "longest poll period of the point's signals, at least 3 scan periods)")
    ambient_fallback: float = Field(
        AMBIENT_FALLBACK_C, ge=-40, le=125, description="ambient assumed while the ambient "
        "channel is faulted, C")
    warning_abs: float | None = Field(
        WARNING_ABS_C, description="conductor warning level whatever the ambient, C; "
        "none: off")
    critical_abs: float | None = Field(
        CRITICAL_ABS_C, description="conductor critical level whatever the ambient, C; "
        "none: off")

    @model_validator(mode="after")
    def _consistent(self) -> BusbarSettings:
        _below("warning_delta", self.warning_delta, "critical_delta", self.critical_delta)
        _below("valid_min", self.valid_min, "valid_max", self.valid_max)
        _below("hyst_delta", self.hyst_delta, "warning_delta", self.warning_delta)
        _below("hyst_delta", self.hyst_delta, "imbalance_max", self.imbalance_max)
        _below("hyst_rate", self.hyst_rate, "rate_limit", self.rate_limit)
        if self.warning_abs is not None and self.critical_abs is not None:
            _below("warning_abs", self.warning_abs, "critical_abs", self.critical_abs)
        for name in ("warning_abs", "critical_abs"):
            level = getattr(self, name)
            if level is not None and level - self.hyst_delta <= self.valid_min:
                raise ValueError(f"{name} ({level:g}) minus hyst_delta ({self.hyst_delta:g}) "
                                 f"must lie above valid_min ({self.valid_min:g})")
        return self


def pack_thermal(points: Sequence[ThermalSettings]) -> np.ndarray:
    """Return the core's thermal settings table, one row per point, in the given order."""
    table = np.zeros(len(points), THERMAL_SETTINGS)
    for row, point in zip(table, points, strict=True):
        values = point.model_dump()
        values["input_mode"] = INPUT_MODES[point.input_mode]
        values["input_loss"] = INPUT_LOSS[point.input_loss]
        if values["input_loss_delay"] is None:
            values["input_loss_delay"] = INPUT_LOSS_DELAY_UNRESOLVED
        for name, value in values.items():
            row[name] = value
    return table


def pack_busbar(points: Sequence[BusbarSettings]) -> np.ndarray:
    """Return the core's busbar settings table, one row per point, in the given order."""
    table = np.zeros(len(points), BUSBAR_SETTINGS)
    for row, point in zip(table, points, strict=True):
        values = point.model_dump()
        if values["input_loss_delay"] is None:
            values["input_loss_delay"] = INPUT_LOSS_DELAY_UNRESOLVED
        for name in ("warning_abs", "critical_abs"):
            if values[name] is None:
                values[name] = np.nan  # off: the core never operates on NaN
        for name, value in values.items():
            row[name] = value
    return table
