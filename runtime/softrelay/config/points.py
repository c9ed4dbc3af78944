"""The protected points and the signals they read: a signal is one value of the input image
(where it is read, how often, how it is scaled); a thermal point (ANSI 49) reads three phase
currents (or a sample window), a busbar point three phase temperatures and an ambient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from softrelay.config.base import STRICT, Name
from softrelay.core.layout import BusbarFlag, ThermalFlag
from softrelay.core.settings import BusbarSettings, ThermalSettings

if TYPE_CHECKING:
    from softrelay.config.relay import RelayConfig


#: the flags outputs and SNMP name as '<point>.<flag>', by the point's kind
THERMAL_FLAGS = {f.name.lower(): f for f in ThermalFlag if f and f.name}  # members are named
BUSBAR_FLAGS = {f.name.lower(): f for f in BusbarFlag if f and f.name}


class Signal(BaseModel):
    """One value in the input image: where it is read, how often, how it is scaled."""

    model_config = STRICT
    name: Name
    bus: Name
    address: str = Field(min_length=1, description="device-specific: register, channel, ...")
    poll: float = Field(ge=0.001, le=3600.0, description="poll period, s")
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    stuck_after: int | None = Field(
        None, ge=2, le=100_000, description="this many identical readings in a row mean a "
        "frozen sensor (quality stale); for noisy analog values only; none: off")


class ThermalPoint(BaseModel):
    model_config = STRICT
    name: Name
    kind: Literal["thermal"]
    currents: tuple[Name, Name, Name] | None = Field(
        None, description="signals of IL1, IL2, IL3 (RMS A)")
    angles: tuple[Name, Name, Name] | None = Field(
        None, description="signals of the phase angles (degrees); none: magnitudes only"
    )
    samples: Name | None = Field(None, description="instead of currents: a window signal "
                                 "(an ADC's '<sensor>.window'), true RMS and phasors from it")
    settings: ThermalSettings

    @model_validator(mode="after")
    def _mode_matches_inputs(self) -> ThermalPoint:
        if (self.samples is None) == (self.currents is None):
            raise ValueError("a thermal point reads 'currents' or 'samples' (one of them)")
        if self.samples is not None and self.angles is not None:
            raise ValueError("a sampled point takes its angles from the samples: remove "
                             "'angles'")
        wanted = ("samples" if self.samples else "phasors" if self.angles else "magnitudes")
        if self.settings.input_mode != wanted:
            has = ("a sample window" if self.samples else
                   "angle signals" if self.angles else "no angle signals")
            raise ValueError(
                f"settings.input_mode is {self.settings.input_mode!r} but the point has "
                f"{has}: use {wanted!r}"
            )
        return self


class BusbarPoint(BaseModel):
    model_config = STRICT
    name: Name
    kind: Literal["busbar"]
    phases: tuple[Name, Name, Name] = Field(description="signals of the A, B, C temperatures")
    ambient: Name
    currents: tuple[Name, Name, Name] | None = None
    settings: BusbarSettings = BusbarSettings()


Point = Annotated[ThermalPoint | BusbarPoint, Field(discriminator="kind")]


#: a point is measurement lost after this many polls of its slowest measuring signal
INPUT_LOSS_POLLS = 3


def measuring_signals(point: ThermalPoint | BusbarPoint) -> list[str]:
    """The signals whose loss leaves a point blind: a thermal point's currents (and angles) or
    sample window; a busbar's phase temperatures (a lost ambient has its fallback, and the
    busbar's currents only feed the joint indicator)."""
    if point.kind == "busbar":
        return list(point.phases)
    return [*(point.currents or ()), *(point.angles or ()),
            *((point.samples,) if point.samples else ())]


def derived_input_loss_delay(point: ThermalPoint | BusbarPoint, polls: dict[str, float],
                             scan_period: float) -> float:
    """input_loss_delay when the file leaves it out: 3 x the longest poll period of the
    point's measuring signals (``polls``: signal -> its poll period, or its bus's timeout when
    longer: a read that times out holds the next poll back), and never less than 3 scan
    periods (the core sees a poll only at a scan). One failed or late reading must not say
    blind; three in a row do. Signals that do not exist are left to ``references``."""
    longest = max((polls[n] for n in measuring_signals(point) if n in polls), default=0.0)
    return INPUT_LOSS_POLLS * max(longest, scan_period)


def flag_of(point: ThermalPoint | BusbarPoint, flag: str) -> ThermalFlag | BusbarFlag | None:
    """The flag a point's ``flag`` name denotes, or None."""
    table = THERMAL_FLAGS if point.kind == "thermal" else BUSBAR_FLAGS
    return table.get(flag)


def window_signals_of(config: RelayConfig) -> list[str]:
    """The signals that are sample windows (an ADC's '<sensor>.window' on an SPI bus), in
    configuration order."""
    spi = {b.name for b in config.buses if b.kind == "spi"}
    return [s.name for s in config.signals if s.bus in spi and s.address.endswith(".window")]
