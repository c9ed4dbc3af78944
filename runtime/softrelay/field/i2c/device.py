"""An I2C bus as a ``Device`` (``SensorBusDevice``): MLX90614 and TMP117 chips, real or simulated.

At open, each chip is checked (TMP117: Device_ID) and configured (MLX90614: the emissivity of
the configuration written to EEPROM and read back, the seed's calibration step). One worker per
bus serialises access (two services on one bus lock it). A real bus that cannot be opened (no
/dev/i2c-N: I2C not enabled; permission denied) is a faulted bus with the remedy as its reason,
opened by its worker as soon as it can be (``sensor_bus.DeferredBus``).
"""

from __future__ import annotations

from collections.abc import Callable

from softrelay.catalog.chips import CHIP_QUANTITIES
from softrelay.config.buses import I2CBus
from softrelay.field.i2c.mlx90614 import MLX90614, MLX90614Twin
from softrelay.field.i2c.tmp117 import TMP117, TMP117Twin
from softrelay.field.open_faults import BusOpenError, open_fault
from softrelay.field.sensor_bus import DeferredBus, SensorBusDevice
from softrelay.sim.chip_faults import BusFaults
from softrelay.sim.smbus import SimulatedSMBus


def plant_feed(plant_value: Callable[[str], float], mapping: dict[str, str], quantity: str,
               default: float = 25.0) -> Callable[[], float]:
    """A twin's input: the plant value its configuration names, else a constant."""
    address = mapping.get(quantity)
    return (lambda: plant_value(address)) if address else (lambda: default)


def open_bus(config: I2CBus, plant_value: Callable[[str], float] | None):
    """smbus2's SMBus on /dev/i2c-N, or a SimulatedSMBus whose twins read the plant (and
    whose ``faults`` can be injected)."""
    if not config.simulated:
        from smbus2 import SMBus  # only where a real bus is wanted

        return SMBus(config.bus)
    if plant_value is None:
        raise ValueError(f"bus {config.name!r} is simulated but there is no plant")
    faults = BusFaults("i2c", {s.name: CHIP_QUANTITIES[s.chip] for s in config.sensors},
                       config.timeout)
    bus = SimulatedSMBus(config.bus, faults)
    for sensor in config.sensors:
        feeds = [faults.feed(sensor.name, q, plant_feed(plant_value, sensor.simulate, q))
                 for q in CHIP_QUANTITIES[sensor.chip]]
        twin = (MLX90614Twin(sensor.address, *feeds) if sensor.chip == "mlx90614"
                else TMP117Twin(sensor.address, *feeds))
        bus.attach(sensor.address, twin, sensor.name)
    return bus


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
        if sensor.chip == "mlx90614":
            mlx = MLX90614(bus, sensor.address)
            readers[f"{sensor.name}.object"] = mlx.object_temperature
            readers[f"{sensor.name}.ambient"] = mlx.ambient_temperature
            if sensor.emissivity is not None:
                openers[sensor.name] = (
                    lambda mlx=mlx, e=sensor.emissivity:
                    f"emissivity {mlx.set_emissivity(e):.4f} verified")
            else:
                openers[sensor.name] = (
                    lambda mlx=mlx: f"emissivity {mlx.emissivity():.4f} (as found)")
        else:
            tmp = TMP117(bus, sensor.address)
            readers[f"{sensor.name}.temperature"] = tmp.temperature
            openers[sensor.name] = lambda tmp=tmp: (tmp.open(), "TMP117 identified")[1]
    device = SensorBusDevice(config.name, config.timeout, openers, readers, bus.close,
                             getattr(bus, "faults", None))
    device.bus = bus
    return device
