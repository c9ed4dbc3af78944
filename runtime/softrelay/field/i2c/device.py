"""An I2C bus as a ``Device`` (``SensorBusDevice``): MLX90614 and TMP117 chips, real or simulated.

At open, each chip is checked (TMP117: Device_ID) and configured (MLX90614: the emissivity of
the configuration written to EEPROM and read back, the seed's calibration step). One worker per
bus serialises access (two services on one bus lock it). A real bus that cannot be opened (no
/dev/i2c-N: I2C not enabled; permission denied) is a faulted bus with the remedy as its reason,
opened by its worker as soon as it can be (``sensor_bus.DeferredBus``). Each chip's driver is
found by its name (its catalog entry, ``catalog.chips``) and a simulated bus by the registry's
stand-in, so this module names no chip and imports nothing of ``softrelay.sim``.
"""

from __future__ import annotations

from collections.abc import Callable

from softrelay.config.buses import I2CBus
from softrelay.field.open_faults import BusOpenError, open_fault
from softrelay.field.registry import chip_driver, stand_in
from softrelay.field.sensor_bus import DeferredBus, SensorBusDevice


def open_bus(config: I2CBus, plant_value: Callable[[str], float] | None):
    """smbus2's SMBus on /dev/i2c-N, or the registry's stand-in (``sim.buses``: a simulated
    SMBus whose twins read the plant, and whose ``faults`` can be injected)."""
    if not config.simulated:
        from smbus2 import SMBus  # only where a real bus is wanted

        return SMBus(config.bus)
    return stand_in(config)(config, plant_value)


def i2c_bus_device(config: I2CBus, plant_value: Callable[[str], float] | None = None,
                   bus=None) -> SensorBusDevice | DeferredBus:
    """The bus's device: on ``bus`` when given; a real bus is opened by its worker
    (``DeferredBus``: a missing /dev/i2c-N is a faulted bus, tried again until it opens)."""
    if bus is None and not config.simulated:
        path = f"/dev/i2c-{config.bus}"
        return DeferredBus(config.name, config.timeout,
                           lambda: i2c_bus_device(config, bus=open_bus(config, None)),
                           lambda exc: exc if isinstance(exc, BusOpenError)
                           else open_fault("i2c", path, exc))
    bus = bus if bus is not None else open_bus(config, plant_value)
    openers: dict[str, Callable[[], str]] = {}
    readers: dict[str, Callable[[], float]] = {}
    for sensor in config.sensors:
        chip = chip_driver(sensor.chip, f"sensor {sensor.name!r}").on_bus(bus, sensor)
        openers[sensor.name] = chip.open
        readers.update({f"{sensor.name}.{q}": read for q, read in chip.readers.items()})
    device = SensorBusDevice(config.name, config.timeout, openers, readers, bus.close,
                             getattr(bus, "faults", None))
    device.bus = bus
    return device


def open_i2c(config: I2CBus, plant=None, sampling=None) -> SensorBusDevice | DeferredBus:
    """The registry's factory (``registry.BUS_KINDS['i2c']``): ``plant`` feeds a simulated
    bus's twins; ``sampling``: unused (no I2C chip samples windows)."""
    return i2c_bus_device(config, plant.read if plant is not None else None)
