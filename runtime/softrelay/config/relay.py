"""The relay's configuration: one YAML file, validated by ``RelayConfig`` (the root).

Every key has an explicit type and unit; unknown keys are errors. Names tie the file together:
a signal names its bus, a point names its signals, an output names ``<point>.<flag>``. Those
cross-references are checked by ``config.references`` (the models check one object at a time).

The sections are modelled by subject: ``scan``, ``state`` (state and events), ``health``,
``buses``, ``points`` (signals and points), ``outputs`` (coils, inputs, GPIO), ``modbus``
(slaves, TLS, access), ``telemetry`` (metrics, MQTT, SNMP), ``plant``. Describes and validates
only; never opens devices or files.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from softrelay.config.base import STRICT, Name
from softrelay.config.buses import Bus, Sampling
from softrelay.config.health import Healthy
from softrelay.config.modbus import UNLOCK_MIGRATION, Access, ModbusRtuSlave, ModbusSlave
from softrelay.config.outputs import Gpio, Input, Output
from softrelay.config.plant import Plant
from softrelay.config.points import (
    BusbarPoint,
    Point,
    Signal,
    ThermalPoint,
    derived_input_loss_delay,
)
from softrelay.config.scan import Scan
from softrelay.config.state import Events, State
from softrelay.config.telemetry import Metrics, Mqtt, SnmpTrapTarget


class RelayConfig(BaseModel):
    """The whole file."""

    model_config = STRICT
    name: Name = "softrelay"
    scan: Scan
    state: State
    events: Events = Events()
    healthy: Healthy = Healthy()
    buses: tuple[Bus, ...] = ()
    signals: tuple[Signal, ...] = ()
    points: tuple[Point, ...] = Field(min_length=1)
    outputs: tuple[Output, ...] = ()
    inputs: tuple[Input, ...] = ()
    modbus: ModbusSlave | None = Field(None, description="the slave for the DCS; none: no "
                                       "Modbus server")
    modbus_rtu: ModbusRtuSlave | None = Field(None, description="the map on an RS-485 line "
                                              "too")
    access: Access = Field(Access(), description="access levels over Modbus; left out: no "
                           "codes (reads only, and what levels gives level 0)")
    unlock: dict | None = Field(None, description="the section before access levels: refused "
                                "with the way to write it as 'access'")
    metrics: Metrics | None = Field(None, description="Prometheus endpoint; none: off")
    mqtt: Mqtt | None = Field(None, description="MQTT publisher; none: off")
    snmp: SnmpTrapTarget | None = Field(None, description="SNMPv3 traps; none: off")
    sampling: Sampling = Sampling()
    plant: Plant | None = None
    gpio: Gpio = Gpio()

    @property
    def thermal_points(self) -> tuple[ThermalPoint, ...]:
        """The thermal points in file order: the rows of the core's thermal tables."""
        return tuple(p for p in self.points if isinstance(p, ThermalPoint))

    @property
    def busbar_points(self) -> tuple[BusbarPoint, ...]:
        """The busbar points in file order: the rows of the core's busbar tables."""
        return tuple(p for p in self.points if isinstance(p, BusbarPoint))

    @field_validator("unlock", mode="before")
    @classmethod
    def _unlock_replaced(cls, value):
        if value is not None:
            raise ValueError(UNLOCK_MIGRATION)
        return value

    @model_validator(mode="after")
    def _input_loss_delays(self) -> RelayConfig:
        """Give every point whose input_loss_delay is left at none its derived delay (see
        ``derived_input_loss_delay``): the core's table always holds a number, and
        ``softrelay check`` prints the one in force."""
        timeouts = {b.name: b.timeout for b in self.buses}
        # a poll that fails takes its bus's timeout before the next one can start
        polls = {s.name: max(s.poll, timeouts.get(s.bus, 0.0)) for s in self.signals}
        points = []
        for point in self.points:
            if point.settings.input_loss_delay is None:
                delay = derived_input_loss_delay(point, polls, self.scan.period)
                settings = point.settings.model_copy(update={"input_loss_delay": delay})
                point = point.model_copy(update={"settings": settings})
            points.append(point)
        object.__setattr__(self, "points", tuple(points))  # the model is frozen
        return self
