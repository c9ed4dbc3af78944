"""The scan: its period, the watchdog's patience, and the real-time options it runs with."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from softrelay.config.base import STRICT


class Realtime(BaseModel):
    """Real-time options; each is applied where permitted, else a warning and normal priority."""

    model_config = STRICT
    priority: int = Field(0, ge=0, le=99, description="SCHED_FIFO priority; 0 = normal")
    lock_memory: bool = Field(False, description="mlockall(MCL_CURRENT | MCL_FUTURE)")
    cpu: int | None = Field(None, ge=0, description="pin the scan to this CPU")
    timer_slack_ns: int | None = Field(1, ge=1, description="PR_SET_TIMERSLACK, ns")
    helper_priority: int = Field(0, ge=0, le=98, description="SCHED_FIFO priority of the "
                                 "helper processes (field I/O, telemetry); 0 = normal. Below "
                                 "priority: a helper never competes with the scan")

    @model_validator(mode="after")
    def _helpers_below_the_scan(self) -> Realtime:
        if self.helper_priority and self.helper_priority >= self.priority:
            raise ValueError(f"helper_priority {self.helper_priority} must be below priority "
                             f"{self.priority} (the scan's), or 0 (normal priority)")
        return self


class Scan(BaseModel):
    model_config = STRICT
    period: float = Field(ge=0.001, le=60.0, description="scan period, s (1 ms to 60 s)")
    watchdog_periods: int = Field(10, ge=2, le=1000,
                                  description="a scan this many periods late drops 'healthy'")
    realtime: Realtime = Realtime()
