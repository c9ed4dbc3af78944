"""The relay's contacts and binary inputs on GPIO: coils energised by flags (or by health),
inputs that issue commands, and the pin factory that drives them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from softrelay.config.base import STRICT, Name
from softrelay.config.pins import gpio_pin


class Output(BaseModel):
    """A relay coil: energised by an OR of flags (or by health), like a relay's output matrix."""

    model_config = STRICT
    name: Name
    pin: int | str = Field(description="GPIO pin (BCM number or gpiozero name)")
    flags: tuple[str, ...] = Field((), description="'<point>.<flag>' names; any one energises")
    healthy: bool = Field(False, description="the self-supervision contact: energised while "
                                             "healthy, dropped on a stall or self-test failure")
    invert: bool = Field(False, description="energised while none of the flags is set "
                                            "(a permissive)")
    latched: bool = Field(False, description="stays operated until a reset or acknowledge")
    fail_safe: bool = Field(False, description="energised in the normal state, dropped to "
                                               "operate (and when the relay is unhealthy)")
    min_pulse: float = Field(0.0, ge=0.0, le=60.0, description="s energised at the least")
    active_high: bool = True

    @field_validator("pin")
    @classmethod
    def _a_gpio_pin(cls, pin: int | str) -> int | str:
        gpio_pin(pin)  # the reason gpiozero would refuse it, now
        return pin

    @model_validator(mode="after")
    def _one_source(self) -> Output:
        if self.healthy and self.flags:
            raise ValueError("a healthy contact is driven by health alone: remove 'flags'")
        if self.healthy and (self.fail_safe or self.invert or self.latched):
            raise ValueError("a healthy contact is energised while healthy: it takes no "
                             "'fail_safe', 'invert' or 'latched'")
        if not self.healthy and not self.flags:
            raise ValueError("an output needs 'flags' (or 'healthy: true')")
        return self


class Input(BaseModel):
    """A GPIO input that issues a command, as a relay's binary input does."""

    model_config = STRICT
    name: Name
    pin: int | str
    command: Literal["reset", "acknowledge", "preset"]
    points: tuple[Name, ...] = Field((), description="points it acts on; none: all")
    preset_theta: float = Field(1.0, ge=0.0, le=10.0, description="for 'preset'")
    pull_up: bool = True

    @field_validator("pin")
    @classmethod
    def _a_gpio_pin(cls, pin: int | str) -> int | str:
        gpio_pin(pin)
        return pin


class Gpio(BaseModel):
    """Where the coils and buttons are: gpiozero's pin factory, said, never guessed."""

    model_config = STRICT
    factory: Literal["auto", "mock", "lgpio", "rpigpio", "native"] = Field(
        "auto", description="gpiozero's pin factory: mock (simulated pins), lgpio, rpigpio, "
        "native (real BCM pins; one that cannot load stops the start); auto: gpiozero's "
        "choice where a GPIO chip exists, else mock pins with a warning")
