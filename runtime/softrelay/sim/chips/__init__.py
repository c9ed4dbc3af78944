"""The chips' twins: each answers its bus with the bytes its datasheet gives, fed by the plant.

One module per chip, its twin class named by the chip's ``"module:factory"`` string
(``softrelay.sim.chips.mlx90614:MLX90614Twin``); the chip's facts (register numbers, codings,
the PEC) stay with its driver under ``softrelay.field`` and the twin imports them, so the two
can never disagree. Every twin class has ``on_bus(sensor, inputs)``: the twin of a configured
sensor on a simulated bus, sensing the plant through ``ChipInputs`` (the bus's faults
applied), so a simulated bus builds every chip the same way, whatever the chip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from softrelay.config.buses import Sensor
from softrelay.sim.chip_faults import BusFaults


def plant_feed(plant_value: Callable[[str], float], mapping: dict[str, str], quantity: str,
               default: float = 25.0) -> Callable[[], float]:
    """A twin's input: the plant value its configuration names, else a constant."""
    address = mapping.get(quantity)
    return (lambda: plant_value(address)) if address else (lambda: default)


@dataclass
class ChipInputs:
    """What the twin of one configured ``sensor`` on a simulated bus senses: the plant values
    its ``simulate`` mapping names, through the bus's element faults (``faults``)."""

    sensor: Sensor  #: the sensor's configuration (``name``, ``simulate``, the chip's settings)
    faults: BusFaults
    plant_value: Callable[[str], float]  #: a plant address -> its value now
    plant: object | None = None  #: the plant model itself (an ADC's twin samples waveforms)

    def value(self, quantity: str) -> Callable[[], float]:
        """``quantity`` as the chip's sensing element delivers it (faults applied)."""
        return self.faults.feed(self.sensor.name, quantity,
                                plant_feed(self.plant_value, self.sensor.simulate, quantity))
