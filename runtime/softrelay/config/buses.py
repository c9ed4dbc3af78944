"""The field buses and what is on them: the plant's simulated devices, I2C and SPI chips,
Modbus devices behind a TCP gateway or on an RTU line.

Every bus is a ``FieldBus``: a name, a timeout per request and the longest back-off between
reads (or reconnects) of a bus whose every read fails, and whether its devices are simulated.
What each chip is (its quantities, SPI modes and clock) is the catalog's
(``softrelay.catalog.chips``): the models validate against it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from softrelay.catalog.chips import MCP3208_BITS_PER_CONVERSION, SPI_CHIPS, SPI_MAX_TRANSFERS
from softrelay.config.base import STRICT, Name, Word, distinct

#: a local bus's (plant, I2C, SPI) time per request, s
LocalTimeout = Annotated[float, Field(0.1, gt=0.0, le=60.0, description="per request, s")]
#: a local bus's longest wait between reads while its every read fails, s
LocalBackoff = Annotated[float, Field(
    1.0, ge=0.0, le=600.0, description="longest wait between reads of a bus whose every read "
    "fails, s (a protection input is wanted back soon; a local bus costs nothing to ask)")]
#: an I2C or SPI bus whose chips are twins answering the driver's own bytes
SimulatedChips = Annotated[bool, Field(False, description="chips simulated at the "
                                                          "transaction level")]


class FieldBus(BaseModel):
    """What every field bus is: a name (signals name it as their ``bus``), a ``kind`` (the
    union's tag), a ``timeout`` per request and a ``max_backoff`` (the longest wait between
    reads, or reconnects, of a bus whose every read fails). Each kind declares its own fields
    in its own order, the shared ones through ``LocalTimeout`` / ``LocalBackoff`` /
    ``SimulatedChips`` (local buses) or ``_ModbusLine`` (Modbus lines): the JSON key order is
    the field order, and the configuration hash and the kept settings' file identity are
    computed from that JSON."""

    model_config = STRICT
    name: Name

    @property
    def is_simulated(self) -> bool:
        """Its devices are the plant's: a 'simulated' bus, or one whose ``simulated`` is
        set (faults can be injected into it; it needs a plant)."""
        return bool(getattr(self, "simulated", False))


class SimulatedBus(FieldBus):
    """Devices of the built-in plant model (demo, tests)."""

    kind: Literal["simulated"]
    timeout: LocalTimeout
    max_backoff: LocalBackoff

    @property
    def is_simulated(self) -> bool:
        return True


class I2CSensor(BaseModel):
    """One chip on an I2C bus. Its signals are addressed '<name>.<quantity>': an MLX90614
    gives 'object' and 'ambient', a TMP117 'temperature'."""

    model_config = STRICT
    name: Name
    chip: Literal["mlx90614", "tmp117"]
    address: int = Field(ge=0x03, le=0x77, description="7-bit address")
    emissivity: float | None = Field(None, ge=0.1, le=1.0,
                                     description="MLX90614: written to EEPROM at start, verified")
    simulate: dict[str, str] = Field(default_factory=dict,
                                     description="simulated bus: quantity -> plant address")


class I2CBus(FieldBus):
    """An I2C bus (/dev/i2c-N through smbus2), or its simulated twin fed by the plant."""

    kind: Literal["i2c"]
    bus: int = Field(1, ge=0, description="N of /dev/i2c-N")
    simulated: SimulatedChips
    timeout: LocalTimeout
    max_backoff: LocalBackoff
    sensors: tuple[I2CSensor, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _sensors(self) -> I2CBus:
        distinct(self.sensors, lambda s: s.address, lambda a: f"address 0x{a:02x}")
        for sensor in self.sensors:
            if sensor.emissivity is not None and sensor.chip != "mlx90614":
                raise ValueError(f"{sensor.name}: only an MLX90614 has an emissivity")
        return self


class _SpiChip(BaseModel):
    """What every chip on an SPI bus has: a chip select, a mode and a clock."""

    model_config = STRICT
    name: Name
    chip: str
    device: int = Field(ge=0, description="chip select: D of /dev/spidevB.D")
    mode: int | None = Field(None, ge=0, le=3, description="SPI mode (CPOL, CPHA); none: the "
                             "chip's first (MAX31865: 1, MCP3208: 0)")
    max_speed_hz: int | None = Field(None, ge=10_000, le=50_000_000, description="SPI clock; "
                                     "none: the bus's")

    @model_validator(mode="after")
    def _datasheet(self) -> _SpiChip:
        modes, fastest = SPI_CHIPS[self.chip]
        if self.mode is not None and self.mode not in modes:
            raise ValueError(f"a {self.chip.upper()} works in SPI modes "
                             f"{' and '.join(map(str, modes))}, not {self.mode}")
        if self.max_speed_hz is not None and self.max_speed_hz > fastest:
            raise ValueError(f"max_speed_hz {self.max_speed_hz}: a {self.chip.upper()} is "
                             f"clocked at {fastest} Hz at most")
        return self

    def spi_mode(self) -> int:
        return self.mode if self.mode is not None else SPI_CHIPS[self.chip][0][0]

    def speed(self, bus: SpiBus) -> int:
        """The clock this chip is driven at: its own, else the bus's (within its limit)."""
        return self.max_speed_hz or min(bus.max_speed_hz, SPI_CHIPS[self.chip][1])


class SpiSensor(_SpiChip):
    """A MAX31865 RTD converter on a chip select; its signal is '<name>.temperature'."""

    chip: Literal["max31865"]
    r0: float = Field(100.0, gt=0.0, description="RTD at 0 C: 100 (PT100) or 1000 (PT1000)")
    r_ref: float = Field(430.0, gt=0.0, description="reference resistor, ohm")
    wires: Literal[2, 3, 4] = 3
    filter_50hz: bool = True
    simulate: dict[str, str] = Field(default_factory=dict,
                                     description="simulated bus: quantity -> plant address")

    @model_validator(mode="after")
    def _reference(self) -> SpiSensor:
        if self.r_ref <= self.r0:
            raise ValueError(f"r_ref ({self.r_ref:g}) must exceed r0 ({self.r0:g}): the ratio "
                             "is measured against it")
        return self


class AdcSensor(_SpiChip):
    """An MCP3208 ADC sampling three CT inputs in bursts: its signal is '<name>.window', the
    sample window of the three phase currents a thermal point in 'samples' mode reads."""

    chip: Literal["mcp3208"]
    channels: tuple[int, int, int] = Field((0, 1, 2), description="inputs of L1, L2, L3")
    amps_per_count: float = Field(gt=0.0, description="primary A per ADC count (CT ratio, "
                                  "burden resistor and reference voltage together)")
    vref: float = Field(3.3, gt=0.0, le=5.5, description="reference voltage, V (simulation); "
                        "the clock limit is 2 MHz at 5 V, 1 MHz at 2.7 V")
    overhead_us: float = Field(0.0, ge=0.0, le=1000.0, description="controller time per "
                               "transfer beyond its clocks and delay, us (measure it on the "
                               "target: the burst's duration is logged)")
    timing_tolerance: float = Field(0.25, gt=0.0, le=1.0, description="a burst whose "
                                    "duration, as measured around the ioctl, is off by more "
                                    "than this fraction is not used: it catches a controller "
                                    "that stalled mid-burst (the fine pacing is the kernel's); "
                                    "a wake-up of this process that much late refuses one too")
    simulate: dict[str, str] = Field(default_factory=dict, description="simulated bus: "
                                     "'ch<n>' -> a plant current ('motor1.current.a')")

    @model_validator(mode="after")
    def _inputs(self) -> AdcSensor:
        if len(set(self.channels)) != 3 or not all(0 <= c <= 7 for c in self.channels):
            raise ValueError(f"channels {list(self.channels)}: three distinct inputs 0..7")
        return self


#: a chip on an I2C or SPI bus (what a simulated bus gives a twin)
Sensor = I2CSensor | SpiSensor | AdcSensor


class SpiBus(FieldBus):
    """An SPI bus (/dev/spidevB.D through spidev), or its simulated twin fed by the plant."""

    kind: Literal["spi"]
    bus: int = Field(0, ge=0, description="B of /dev/spidevB.D")
    simulated: SimulatedChips
    timeout: LocalTimeout
    max_backoff: LocalBackoff
    max_speed_hz: int = Field(1_000_000, ge=10_000, le=50_000_000,
                              description="SPI clock of chips that do not set their own")
    sensors: tuple[Annotated[SpiSensor | AdcSensor, Field(discriminator="chip")], ...] = Field(
        min_length=1)

    @model_validator(mode="after")
    def _chip_selects(self) -> SpiBus:
        distinct(self.sensors, lambda s: s.device, lambda d: f"chip select {d}")
        return self


class Sampling(BaseModel):
    """The current windows of points in 'samples' mode: one format for every ADC."""

    model_config = STRICT
    frequency: float = Field(50.0, ge=16.0, le=400.0, description="nominal system frequency, "
                             "Hz: the window holds whole cycles of it")
    samples_per_cycle: int = Field(32, ge=24, le=256, description="per phase; at least 24 so "
                                   "that the 11th harmonic is inside the true RMS")
    cycles: int = Field(2, ge=1, le=20, description="cycles per window")

    @property
    def window_length(self) -> int:
        return self.samples_per_cycle * self.cycles


class ModbusRegister(BaseModel):
    """One value of a Modbus device: where it lives and how it is coded."""

    model_config = STRICT
    name: Name = Field(description="the quantity: signals address it as '<device>.<name>'")
    table: Literal["holding", "input"] = Field("holding", description="FC03 or FC04")
    address: int = Field(ge=0, le=65535, description="0-based register address (as sent)")
    type: Literal["int16", "uint16", "int32", "uint32", "float32"] = "int16"
    word_order: Literal["big", "little"] = Field(
        "big", description="32-bit values: big = high word first (ABCD), little = CDAB")
    scale: float = 1.0
    offset: float = 0.0
    sentinels: tuple[float, ...] = Field((), description="raw values meaning 'no reading'")
    valid: tuple[float, float] | None = Field(
        None, description="engineering range (after scale and offset); outside: out of range")
    unit: str = ""

    @model_validator(mode="after")
    def _fits(self) -> ModbusRegister:
        width = 1 if self.type in ("int16", "uint16") else 2
        if self.address + width > 65536:
            raise ValueError(f"a {self.type} at {self.address} runs past register 65535")
        if self.valid is not None and self.valid[0] > self.valid[1]:
            raise ValueError(f"valid range {list(self.valid)} is empty")
        return self


class ModbusDevice(BaseModel):
    """A device (unit id) behind a Modbus gateway or on an RTU line: a built-in profile, its
    own register table, or a profile with extra registers."""

    model_config = STRICT
    name: Word = Field(description="signals address its values as '<name>.<quantity>'")
    unit: int = Field(1, ge=0, le=255, description="unit id (RTU: 1..247)")
    profile: Literal["sdm630", "thermal_gateway"] | None = Field(
        None, description="sdm630: three-phase meter (FC04 float32); thermal_gateway: the "
                          "seed's gateway (temperatures, emissivity x 100 at 4005, scaling "
                          "at 4006)")
    registers: tuple[ModbusRegister, ...] = Field((), description="added to the profile's")
    max_read: int | None = Field(None, ge=1, le=125, description="registers per request; "
                                 "none: the profile's limit, else 125")
    max_gap: int = Field(0, ge=0, le=64, description="unread registers a request may span "
                                                     "to save a request")
    emissivity: float | None = Field(None, ge=0.1, le=1.0, description="thermal_gateway: "
                                     "written x 100 to 4005 at connect, read back")
    decimals: int = Field(1, ge=0, le=3, description="thermal_gateway: written to 4006 at "
                          "connect, read back; temperatures are raw x 10^-decimals")
    channels: int = Field(8, ge=1, le=64, description="thermal_gateway: temperature inputs")
    simulate: dict[str, str] = Field(default_factory=dict,
                                     description="simulated bus: quantity -> plant address")

    @model_validator(mode="after")
    def _complete(self) -> ModbusDevice:
        if self.profile is None and not self.registers:
            raise ValueError("a device needs a 'profile' or 'registers'")
        if self.profile != "thermal_gateway" and self.emissivity is not None:
            raise ValueError("only a thermal_gateway takes an 'emissivity'")
        distinct(self.registers, lambda r: r.name, lambda n: f"the name {n!r}", "registers")
        return self


class _ModbusLine(FieldBus):
    """What a Modbus TCP connection and an RTU line share: the devices (unit ids) on it."""

    timeout: float = Field(0.2, gt=0.0, le=60.0, description="per request, s")
    max_backoff: float = Field(5.0, ge=0.0, le=600.0,
                               description="longest wait between reconnect attempts, s")
    simulated: bool = Field(False, description="devices simulated at the register level")
    devices: tuple[ModbusDevice, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _devices(self) -> _ModbusLine:
        distinct(self.devices, lambda d: d.name, lambda n: f"the name {n!r}", "devices")
        distinct(self.devices, lambda d: d.unit, lambda u: f"unit id {u}", "devices")
        return self


class ModbusTcpBus(_ModbusLine):
    """A Modbus TCP gateway or device: one connection, shared by every unit id behind it."""

    kind: Literal["modbus_tcp"]
    host: str = Field(min_length=1)
    port: int = Field(502, ge=0, le=65535, description="0: any free port (simulated only)")

    @model_validator(mode="after")
    def _port(self) -> ModbusTcpBus:
        if self.port == 0 and not self.simulated:
            raise ValueError("port 0 (any free port) is for a simulated gateway only")
        return self


class ModbusRtuBus(_ModbusLine):
    """A Modbus RTU line on a serial port: one master, requests strictly one at a time."""

    kind: Literal["modbus_rtu"]
    port: str = Field("", description="serial device, e.g. /dev/ttyUSB0; empty: a pty "
                                      "(simulated only)")
    baudrate: int = Field(19200, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1

    @model_validator(mode="after")
    def _line(self) -> ModbusRtuBus:
        if not self.port and not self.simulated:
            raise ValueError("a real RTU line needs its serial 'port'")
        if self.port and self.simulated:
            raise ValueError("a simulated RTU line makes its own pty: remove 'port'")
        for device in self.devices:
            if not 1 <= device.unit <= 247:
                raise ValueError(f"{device.name}: an RTU unit id is 1..247, not {device.unit}")
        return self


Bus = Annotated[SimulatedBus | I2CBus | SpiBus | ModbusTcpBus | ModbusRtuBus,
                Field(discriminator="kind")]


def adc_problems(sensor: AdcSensor, bus: SpiBus, sampling: Sampling
                 ) -> list[tuple[tuple, str]]:
    """Why an ADC cannot sample the configured windows, as (key path, reason)."""
    problems: list[tuple[tuple, str]] = []
    interval = 1e6 / (sampling.frequency * sampling.samples_per_cycle * 3)
    transfer = MCP3208_BITS_PER_CONVERSION * 1e6 / sensor.speed(bus) + sensor.overhead_us
    if transfer > interval:
        problems.append((("max_speed_hz",), f"a conversion takes {transfer:.1f} us at "
                         f"{sensor.speed(bus)} Hz, longer than the {interval:.1f} us between "
                         "conversions the sampling needs"))
    if 3 * sampling.window_length > SPI_MAX_TRANSFERS:
        problems.append((("device",), f"a window of 3 x {sampling.window_length} conversions "
                         f"exceeds the {SPI_MAX_TRANSFERS} transfers of one SPI message: fewer "
                         "sampling.cycles or samples_per_cycle"))
    for key in sensor.simulate:
        if key not in {f"ch{c}" for c in sensor.channels}:
            problems.append((("simulate", key), f"not an input of this ADC (channels "
                             f"{', '.join(f'ch{c}' for c in sensor.channels)})"))
    return problems
