"""What stands in for a bus's hardware when its configuration says ``simulated: true``.

The field's drivers open these through ``field.registry.STAND_INS`` (by name, never by import:
the field never imports the simulation): an smbus2-like bus carrying the chips' twins
(``simulated_smbus``), the chip selects of an SPI bus with theirs (``SimulatedSpiBus``), a
server of the Modbus devices' twins (``twin_server``, on loopback or a pty). Each chip's twin is
the class its catalog entry names (``catalog.chips``), built by its ``on_bus`` (``sim.chips``),
so no code here names a chip; the bus's faults (``chip_faults.BusFaults``) act on every
transaction and in every sensing element, and are injected through the bus's ``faults``.
"""

from __future__ import annotations

from collections.abc import Callable

from softrelay.catalog.chips import CHIP_QUANTITIES, CHIPS, REFUSED_ON_CHIP
from softrelay.config.buses import I2CBus, SpiBus
from softrelay.field.registry import look_up
from softrelay.field.spi.port import SpidevPort
from softrelay.sim.chip_faults import BusFaults
from softrelay.sim.chips import ChipInputs
from softrelay.sim.smbus import SimulatedSMBus
from softrelay.sim.spidev import SimulatedSpiDev


def twin(sensor, inputs: ChipInputs):
    """The twin of the configured ``sensor``'s chip, the class its catalog entry names
    (``registry.BusKindError`` when it cannot be had)."""
    twins = {name: spec.twin for name, spec in CHIPS.items()}
    return look_up(twins, sensor.chip, f"sensor {sensor.name!r} (simulated)",
                   "chip").on_bus(sensor, inputs)


def _no_plant(config) -> ValueError:
    return ValueError(f"bus {config.name!r} is simulated but there is no plant")


def simulated_smbus(config: I2CBus, plant_value: Callable[[str], float] | None
                    ) -> SimulatedSMBus:
    """A simulated SMBus carrying the twin of every chip of ``config``, each at its address
    and sensing the plant (``plant_value``: a plant address -> its value now)."""
    if plant_value is None:
        raise _no_plant(config)
    faults = BusFaults("i2c", {s.name: CHIP_QUANTITIES[s.chip] for s in config.sensors},
                       config.timeout)
    bus = SimulatedSMBus(config.bus, faults)
    for sensor in config.sensors:
        bus.attach(sensor.address, twin(sensor, ChipInputs(sensor, faults, plant_value)),
                   sensor.name)
    return bus


class SimulatedSpiBus:
    """The chip selects of a simulated SPI bus: each chip's twin behind a simulated spidev
    (``port``), all under the bus's ``faults``."""

    def __init__(self, config: SpiBus, plant) -> None:
        """``plant``: the ``sim.plant.PlantModel`` the twins sense."""
        if plant is None:
            raise _no_plant(config)
        self.plant = plant
        self.faults = BusFaults("spi", {s.name: CHIP_QUANTITIES[s.chip]
                                        for s in config.sensors}, config.timeout,
                                refused={s.name: REFUSED_ON_CHIP.get(s.chip, {})
                                         for s in config.sensors})

    def port(self, sensor) -> SpidevPort:
        """The chip select of ``sensor``: its twin behind a simulated spidev, which decodes
        the same SPI_IOC_MESSAGE structures the kernel does."""
        chip = twin(sensor, ChipInputs(sensor, self.faults, self.plant.read, self.plant))
        simulated = SimulatedSpiDev(chip, sensor.name, self.faults)
        return SpidevPort(simulated, ioctl=simulated.ioctl, clock=simulated.wire_clock)


def twin_server(config, plant):
    """A server (not yet listening) of the twins of every device of the Modbus bus
    ``config``, fed by ``plant``; the master starts it on TCP or a pty and talks to it."""
    from softrelay.sim.modbus_twin import twins_for
    from softrelay.sim.twin_server import TwinServer

    return TwinServer(twins_for(config, plant.read if plant is not None else None),
                      config.name)
