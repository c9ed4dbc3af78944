"""An SPI bus as a ``Device`` (``SensorBusDevice``): MAX31865 converters, real or simulated.

Each converter is opened on its own chip select (/dev/spidevB.D), configured (bias, automatic
conversion, wiring, mains filter) and the configuration read back at open.
"""

from __future__ import annotations

from collections.abc import Callable

from softrelay.config.schema import SpiBus
from softrelay.io.chip_faults import BusFaults
from softrelay.io.i2c.device import plant_feed
from softrelay.io.sensor_bus import SensorBusDevice
from softrelay.io.spi.max31865 import MAX31865, MAX31865Twin
from softrelay.io.spi.spidev_sim import SimulatedSpiDev


def spi_bus_device(config: SpiBus, plant_value: Callable[[str], float] | None = None
                   ) -> SensorBusDevice:
    openers: dict[str, Callable[[], str]] = {}
    readers: dict[str, Callable[[], float]] = {}
    handles = []
    faults = None
    if config.simulated:
        if plant_value is None:
            raise ValueError(f"bus {config.name!r} is simulated but there is no plant")
        faults = BusFaults("spi", {s.name: ("temperature",) for s in config.sensors},
                           config.timeout)
    for sensor in config.sensors:
        if faults is not None:
            feed = faults.feed(sensor.name, "temperature",
                               plant_feed(plant_value, sensor.simulate, "temperature"))
            spi = SimulatedSpiDev(MAX31865Twin(feed, sensor.r0, sensor.r_ref), sensor.name,
                                  faults)
        else:
            try:
                import spidev  # only where a real bus is wanted
            except ImportError:
                raise ImportError(f"bus {config.name!r} needs spidev: "
                                  "pip install 'softrelay[hardware]'") from None
            spi = spidev.SpiDev()
            spi.open(config.bus, sensor.device)
        handles.append(spi)
        rtd = MAX31865(spi, sensor.r0, sensor.r_ref, sensor.wires, sensor.filter_50hz,
                       config.max_speed_hz)
        readers[f"{sensor.name}.temperature"] = rtd.temperature
        openers[sensor.name] = lambda rtd=rtd: (rtd.open(), "MAX31865 configured")[1]

    def close() -> None:
        for handle in handles:
            handle.close()

    return SensorBusDevice(config.name, config.timeout, openers, readers, close, faults)
