"""An SPI bus as a ``Device`` (``SensorBusDevice``): MAX31865 converters and MCP3208 ADCs,
real or simulated.

Each chip is opened on its own chip select (/dev/spidevB.D) through a ``SpidevPort``: a
converter is configured (bias, automatic conversion, wiring, mains filter) and the configuration
read back; an ADC converts each of its inputs once. A simulated bus gives each a twin behind a
simulated spidev (the same port code, ioctl structures included). A real bus that cannot be
opened (SPI not enabled, permission denied, spidev not installed) is a faulted bus with the
remedy as its reason, opened by its worker as soon as it can be (``sensor_bus.DeferredBus``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from softrelay.catalog.chips import CHIP_QUANTITIES
from softrelay.config.buses import AdcSensor, Sampling, SpiBus, SpiSensor
from softrelay.field.i2c.device import plant_feed
from softrelay.field.open_faults import BusOpenError, open_fault
from softrelay.field.sensor_bus import DeferredBus, SensorBusDevice
from softrelay.field.spi.max31865 import MAX31865, MAX31865Twin
from softrelay.field.spi.mcp3208 import MCP3208, MCP3208Twin
from softrelay.field.spi.port import SpidevPort
from softrelay.sim.chip_faults import REFUSED_ON_CHIP, BusFaults
from softrelay.sim.plant import PlantModel
from softrelay.sim.spidev import SimulatedSpiDev


def ct_input(plant: PlantModel, address: str, amps_per_count: float, vref: float,
             every: float = 0.005) -> Callable[[float], float]:
    """The voltage at an ADC input behind a CT and burden biased at vref / 2: the plant
    current's waveform sqrt(2) I cos(2 pi f t + angle); I and the angle refreshed from the
    plant at most every ``every`` s (a burst of 40 ms sees a steady load, as a real one)."""
    volts_per_amp = vref / 4096.0 / amps_per_count
    omega = 2.0 * math.pi * plant.cfg.frequency
    cached = [-math.inf, 0.0, 0.0]

    def volts(t: float) -> float:
        if t - cached[0] >= every:
            rms, angle = plant.phasor(address)
            cached[:] = [t, rms, math.radians(angle)]
        return vref / 2.0 + math.sqrt(2.0) * cached[1] * math.cos(omega * t + cached[2]) * (
            volts_per_amp)

    return volts


def spi_bus_device(config: SpiBus, plant: PlantModel | None = None,
                   sampling: Sampling | None = None) -> SensorBusDevice | DeferredBus:
    """MAX31865 converters and MCP3208 ADCs on one bus, opened on their chip selects; a
    simulated bus has their twins, fed by ``plant``. A real bus is opened by its worker
    (``DeferredBus``): a missing /dev/spidevB.D is a faulted bus, tried again until it opens."""
    if not config.simulated:
        return DeferredBus(config.name, config.timeout,
                           lambda: _spi_bus(config, plant, sampling),
                           lambda exc: exc if isinstance(exc, BusOpenError)
                           else open_fault("spi", f"/dev/spidev{config.bus}.*", exc))
    return _spi_bus(config, plant, sampling)


def _spi_bus(config: SpiBus, plant: PlantModel | None,
             sampling: Sampling | None) -> SensorBusDevice:
    """The bus's device, its chips opened now (raises ``BusOpenError`` when one cannot be)."""
    sampling = sampling or Sampling()
    openers: dict[str, Callable[[], str]] = {}
    readers: dict[str, Callable[[], float]] = {}
    handles = []
    faults = None
    if config.simulated:
        if plant is None:
            raise ValueError(f"bus {config.name!r} is simulated but there is no plant")
        faults = BusFaults("spi", {s.name: CHIP_QUANTITIES[s.chip] for s in config.sensors},
                           config.timeout,
                           refused={s.name: REFUSED_ON_CHIP.get(s.chip, {})
                                    for s in config.sensors})
    for sensor in config.sensors:
        if faults is not None:
            twin = _twin(sensor, plant, faults)
            simulated = SimulatedSpiDev(twin, sensor.name, faults)
            spi = SpidevPort(simulated, ioctl=simulated.ioctl, clock=simulated.wire_clock)
        else:
            path = f"/dev/spidev{config.bus}.{sensor.device}"
            try:
                import spidev  # only where a real bus is wanted

                raw = spidev.SpiDev()
                raw.open(config.bus, sensor.device)
            except (OSError, ImportError) as exc:
                for handle in handles:  # the chip selects opened before this one
                    handle.close()
                raise open_fault("spi", path, exc) from None
            spi = SpidevPort(raw)
        handles.append(spi)
        if sensor.chip == "mcp3208":
            adc = MCP3208(spi, sensor.channels, amps_per_count=sensor.amps_per_count,
                          frequency=sampling.frequency,
                          samples_per_cycle=sampling.samples_per_cycle, cycles=sampling.cycles,
                          max_speed_hz=sensor.speed(config), mode=sensor.spi_mode(),
                          overhead_us=sensor.overhead_us,
                          timing_tolerance=sensor.timing_tolerance)
            readers[f"{sensor.name}.window"] = adc.window
            openers[sensor.name] = adc.open
            continue
        rtd = MAX31865(spi, sensor.r0, sensor.r_ref, sensor.wires, sensor.filter_50hz,
                       sensor.speed(config), sensor.spi_mode())
        readers[f"{sensor.name}.temperature"] = rtd.temperature
        openers[sensor.name] = lambda rtd=rtd: (rtd.open(), "MAX31865 configured")[1]

    def close() -> None:
        for handle in handles:
            handle.close()

    return SensorBusDevice(config.name, config.timeout, openers, readers, close, faults)


def _twin(sensor: SpiSensor | AdcSensor, plant: PlantModel, faults: BusFaults):
    """The simulated chip of ``sensor``, fed by the plant through the bus's faults."""
    if sensor.chip == "max31865":
        feed = faults.feed(sensor.name, "temperature",
                           plant_feed(plant.read, sensor.simulate, "temperature"))
        return MAX31865Twin(feed, sensor.r0, sensor.r_ref)
    per_amp = sensor.vref / 4096.0 / sensor.amps_per_count
    inputs = {}
    for channel in sensor.channels:
        address = sensor.simulate.get(f"ch{channel}")
        volts = (ct_input(plant, address, sensor.amps_per_count, sensor.vref) if address
                 else lambda t, v=sensor.vref / 2.0: v)
        inputs[channel] = faults.waveform(sensor.name, "window", volts, per_amp)
    return MCP3208Twin(inputs, sensor.vref)
