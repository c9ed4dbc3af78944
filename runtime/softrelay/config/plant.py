"""The built-in plant model (demo, tests): simulated motors and busbars, and the faults
injected into simulated devices at a plant time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from softrelay.catalog.faults import FaultKind
from softrelay.config.base import STRICT, Name


class PlantMotor(BaseModel):
    """A simulated motor: its own thermal physics, a load profile and a breaker."""

    model_config = STRICT
    name: Name
    rated_current: float = Field(gt=0.0, description="A")
    load_profile: tuple[tuple[float, float], ...] = Field(
        description="(seconds, per-unit load) steps, repeated; the last entry's time is the cycle"
    )
    trip_coil: Name = Field(description="output that opens the breaker")
    close_coil: Name | None = Field(None, description="output that lets the breaker close")
    restart_delay: float = Field(2.0, ge=0.0, description="s from permissive to close")
    unbalance: float = Field(0.0, ge=0.0, le=0.5, description="per-unit unbalance of phase C")


class JointFault(BaseModel):
    model_config = STRICT
    phase: Literal["A", "B", "C"]
    start: float = Field(0.0, ge=0.0, description="s after start")
    extra_rise: float = Field(gt=0.0, description="C at rated current, when fully developed")
    develop_time: float = Field(60.0, gt=0.0, description="time constant of the fault, s")


class PlantBusbar(BaseModel):
    """A simulated busbar: three phase conductors and an ambient, optionally a bad joint."""

    model_config = STRICT
    name: Name
    ambient: float = Field(25.0, description="C")
    rated_current: float = Field(gt=0.0, description="A")
    load: float = Field(0.8, ge=0.0, le=2.0, description="per-unit")
    rise_at_rated: float = Field(30.0, gt=0.0, description="C over ambient at rated current")
    tau: float = Field(120.0, gt=0.0, description="thermal time constant, s")
    noise: float = Field(0.2, ge=0.0, description="sensor noise, C (standard deviation)")
    joint_fault: JointFault | None = None


class PlantFault(BaseModel):
    """A fault injected into a simulated device at a plant time (the seed's troubleshooting
    matrix, ``catalog.faults.FaultKind``: nack, refused, slow; sentinel, stuck, noisy,
    garbage; where each acts, and which a bus cannot have, is its medium's table there)."""

    model_config = STRICT
    address: str = Field(min_length=1, description="'simulated' bus: a plant address; "
                         "Modbus: '<device>.<quantity>' or '<device>'; I2C, SPI: '<sensor>' or "
                         "'<sensor>.<quantity>'; '*': the whole bus")
    bus: Name
    kind: FaultKind = Field(description="what fails (the values of catalog.faults.FaultKind)")
    start: float = Field(0.0, ge=0.0, description="plant s")
    stop: float | None = Field(None, gt=0.0, description="plant s; none: never cleared")
    sigma: float = Field(5.0, gt=0.0, description="for noisy, C or A")


class Plant(BaseModel):
    model_config = STRICT
    speed: float = Field(1.0, gt=0.0, le=1000.0, description="plant time / real time")
    frequency: float = Field(50.0, ge=16.0, le=400.0, description="system frequency, Hz, of "
                             "the currents simulated ADCs sample")
    motors: tuple[PlantMotor, ...] = ()
    busbars: tuple[PlantBusbar, ...] = ()
    faults: tuple[PlantFault, ...] = ()
