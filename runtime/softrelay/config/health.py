"""The self-supervision contact's declared policy: which causes drop it.

The causes are configuration facts (a file names them in ``healthy.drop_on``), so they live
here; ``supervision.health`` tracks them at run time in this order (the map's
``supervision`` word: bit k is ``CAUSES[k]``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from softrelay.config.base import STRICT

#: every cause, in bit order (the map's ``supervision`` word: bit k is CAUSES[k])
CAUSES = ("scan_stall", "self_test", "measurement_lost", "link_down", "telemetry_down")
#: causes that always drop the contact: a scan stall, a failed self-test
ALWAYS = frozenset({"scan_stall", "self_test"})
#: causes a configuration may choose in ``healthy.drop_on``
OPTIONAL = tuple(c for c in CAUSES if c not in ALWAYS)
DEFAULT_DROP_ON = ("measurement_lost",)


class Healthy(BaseModel):
    """The self-supervision contact's declared policy. A scan stall and a failed self-test
    (event writer, thermal memory, settings keeper, I/O process) always drop it; ``drop_on``
    names what else does."""

    model_config = STRICT
    drop_on: tuple[str, ...] = Field(
        DEFAULT_DROP_ON, description="measurement_lost: any protected point blind for "
        "longer than its input_loss_delay; link_down: any field bus's link; telemetry_down: "
        "the telemetry process not running")

    @field_validator("drop_on")
    @classmethod
    def _known(cls, drop_on: tuple[str, ...]) -> tuple[str, ...]:
        for cause in drop_on:
            if cause not in OPTIONAL:
                always = " (it always drops the contact)" if cause in ALWAYS else ""
                raise ValueError(f"{cause!r} is not a cause to choose{always}: choose from "
                                 f"{', '.join(OPTIONAL)}")
        return drop_on
