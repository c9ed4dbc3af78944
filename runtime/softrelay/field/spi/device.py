"""An SPI bus as a ``Device`` (``SensorBusDevice``): MAX31865 converters and MCP3208 ADCs,
real or simulated.

Each chip is opened on its own chip select (/dev/spidevB.D) through a ``SpidevPort``: a
converter is configured (bias, automatic conversion, wiring, mains filter) and the configuration
read back; an ADC converts each of its inputs once. A simulated bus (the registry's stand-in,
``sim.buses.SimulatedSpiBus``) gives each a twin behind a simulated spidev (the same port code,
ioctl structures included). A real bus that cannot be opened (SPI not enabled, permission
denied, spidev not installed) is a faulted bus with the remedy as its reason, opened by its
worker as soon as it can be (``sensor_bus.DeferredBus``). Each chip's driver is found by its
name (its catalog entry, ``catalog.chips``): this module names no chip and imports nothing of
``softrelay.sim``.
"""

from __future__ import annotations

from collections.abc import Callable

from softrelay.config.buses import Sampling, SpiBus
from softrelay.field.open_faults import BusOpenError, open_fault
from softrelay.field.registry import chip_driver, stand_in
from softrelay.field.sensor_bus import DeferredBus, SensorBusDevice
from softrelay.field.spi.port import SpidevPort


def spi_bus_device(config: SpiBus, plant=None,
                   sampling: Sampling | None = None) -> SensorBusDevice | DeferredBus:
    """MAX31865 converters and MCP3208 ADCs on one bus, opened on their chip selects; a
    simulated bus has their twins, fed by ``plant`` (``sim.plant.PlantModel``). A real bus is
    opened by its worker (``DeferredBus``): a missing /dev/spidevB.D is a faulted bus, tried
    again until it opens. (The registry's factory, ``registry.BUS_KINDS['spi']``.)"""
    if not config.simulated:
        return DeferredBus(config.name, config.timeout,
                           lambda: _spi_bus(config, plant, sampling),
                           lambda exc: exc if isinstance(exc, BusOpenError)
                           else open_fault("spi", f"/dev/spidev{config.bus}.*", exc))
    return _spi_bus(config, plant, sampling)


def _spidev_port(config: SpiBus, sensor, handles: list) -> SpidevPort:
    """The chip select of ``sensor`` on the real bus, through spidev (``BusOpenError`` when
    it cannot be opened, the chip selects in ``handles`` closed first)."""
    path = f"/dev/spidev{config.bus}.{sensor.device}"
    try:
        import spidev  # only where a real bus is wanted

        raw = spidev.SpiDev()
        raw.open(config.bus, sensor.device)
    except (OSError, ImportError) as exc:
        for handle in handles:  # the chip selects opened before this one
            handle.close()
        raise open_fault("spi", path, exc) from None
    return SpidevPort(raw)


def _spi_bus(config: SpiBus, plant, sampling: Sampling | None) -> SensorBusDevice:
    """The bus's device, its chips opened now (raises ``BusOpenError`` when one cannot be)."""
    sampling = sampling or Sampling()
    openers: dict[str, Callable[[], str]] = {}
    readers: dict[str, Callable[[], float]] = {}
    handles: list[SpidevPort] = []
    faults = None
    if config.simulated:
        simulated = stand_in(config)(config, plant)
        faults = simulated.faults
    for sensor in config.sensors:
        spi = (simulated.port(sensor) if faults is not None
               else _spidev_port(config, sensor, handles))
        handles.append(spi)
        chip = chip_driver(sensor.chip, f"sensor {sensor.name!r}").on_bus(
            spi, sensor, config, sampling)
        openers[sensor.name] = chip.open
        readers.update({f"{sensor.name}.{q}": read for q, read in chip.readers.items()})

    def close() -> None:
        for handle in handles:
            handle.close()

    return SensorBusDevice(config.name, config.timeout, openers, readers, close, faults)
