"""An I2C bus as a ``Device``: its chips' drivers behind one worker, real or simulated.

At open, each chip is checked (TMP117: Device_ID) and configured (MLX90614: the emissivity of
the configuration written to EEPROM and read back, the seed's calibration step). A read takes
each addressed quantity in its own transaction: a chip that NACKs, fails its PEC or flags an
error marks its own signals only (IO_ERROR, or OUT_OF_RANGE for the chip's error flag), never
its neighbours'. One worker per bus serialises access (two services on one bus lock it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from softrelay.config.schema import I2CBus
from softrelay.core import Quality
from softrelay.io.device import Device, Reading
from softrelay.io.i2c.mlx90614 import MLX90614, MLX90614Twin
from softrelay.io.i2c.smbus_sim import SimulatedSMBus
from softrelay.io.i2c.tmp117 import TMP117, TMP117Twin


def open_bus(config: I2CBus, plant_value: Callable[[str], float] | None):
    """smbus2's SMBus on /dev/i2c-N, or a SimulatedSMBus whose twins read the plant."""
    if not config.simulated:
        from smbus2 import SMBus  # only where a real bus is wanted

        return SMBus(config.bus)
    if plant_value is None:
        raise ValueError(f"bus {config.name!r} is simulated but there is no plant")
    bus = SimulatedSMBus(config.bus)
    for sensor in config.sensors:

        def feed(quantity: str, sensor=sensor, default: float = 25.0) -> Callable[[], float]:
            address = sensor.simulate.get(quantity)
            return (lambda: plant_value(address)) if address else (lambda: default)

        if sensor.chip == "mlx90614":
            bus.attach(sensor.address, MLX90614Twin(sensor.address, feed("object"),
                                                    feed("ambient")))
        else:
            bus.attach(sensor.address, TMP117Twin(sensor.address, feed("temperature")))
    return bus


class I2CBusDevice(Device):
    def __init__(self, config: I2CBus, plant_value: Callable[[str], float] | None = None,
                 bus=None) -> None:
        super().__init__(config.name, config.timeout)
        self.config = config
        self.bus = bus if bus is not None else open_bus(config, plant_value)
        self.drivers: dict[str, object] = {}
        self.readers: dict[str, Callable[[], float]] = {}
        for sensor in config.sensors:
            if sensor.chip == "mlx90614":
                driver = MLX90614(self.bus, sensor.address)
                self.readers[f"{sensor.name}.object"] = driver.object_temperature
                self.readers[f"{sensor.name}.ambient"] = driver.ambient_temperature
            else:
                driver = TMP117(self.bus, sensor.address)
                self.readers[f"{sensor.name}.temperature"] = driver.temperature
            self.drivers[sensor.name] = driver
        self.opened: dict[str, str] = {}

    def open(self) -> None:
        """Check and configure every chip; a chip that fails is reported, not fatal."""
        for sensor in self.config.sensors:
            driver = self.drivers[sensor.name]
            try:
                if sensor.chip == "tmp117":
                    driver.open()
                    self.opened[sensor.name] = "TMP117 identified"
                elif sensor.emissivity is not None:
                    stored = driver.set_emissivity(sensor.emissivity)
                    self.opened[sensor.name] = f"emissivity {stored:.4f} verified"
                else:
                    self.opened[sensor.name] = f"emissivity {driver.emissivity():.4f} (as found)"
            except (OSError, ValueError) as exc:
                self.errors += 1
                self.last_error = f"{sensor.name}: {exc}"
                self.opened[sensor.name] = f"FAILED: {exc}"

    def close(self) -> None:
        self.bus.close()

    def _read(self, addresses: Sequence[str]) -> list[float | Reading]:
        readings: list[float | Reading] = []
        for address in addresses:
            try:
                readings.append(self.readers[address]())
            except ValueError as exc:  # the chip answered, but flags its reading
                self.last_error = f"{address}: {exc}"
                readings.append((math.nan, Quality.OUT_OF_RANGE))
            except OSError as exc:  # NACK, PEC error, bus error: this chip only
                self.errors += 1
                self.last_error = f"{address}: {exc}"
                readings.append((math.nan, Quality.IO_ERROR))
        return readings
