"""The relay's configuration: one YAML file, validated by these models.

Every key has an explicit type and unit; unknown keys are errors. Names tie the file together:
a signal names its bus, a point names its signals, an output names ``<point>.<flag>``. Those
cross-references are checked by ``references`` (the models check one object at a time).

This module only describes and validates; it never opens devices or files (``state_paths``
reads the environment, nothing else).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from softrelay.config.base import STRICT
from softrelay.config.pins import gpio_pin
from softrelay.config.telemetry import Metrics, Mqtt, SnmpTrapTarget
from softrelay.core.layout import BusbarFlag, ThermalFlag
from softrelay.core.settings import BusbarSettings, ThermalSettings
from softrelay.supervision.health import ALWAYS, DEFAULT_DROP_ON, OPTIONAL

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$",
                            max_length=64)]

Word = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=32,
                            description="a name without dots")]

THERMAL_FLAGS = {f.name.lower(): f for f in ThermalFlag if f}
#: an access level over Modbus: 0 read, 1 operator, 2 engineer
Level = Annotated[int, Field(ge=0, le=2)]
#: what each I2C / SPI chip measures: signals address them as '<sensor>.<quantity>'
CHIP_QUANTITIES = {"mlx90614": ("object", "ambient"), "tmp117": ("temperature",),
                   "max31865": ("temperature",), "mcp3208": ("window",)}
BUSBAR_FLAGS = {f.name.lower(): f for f in BusbarFlag if f}


class Realtime(BaseModel):
    """Real-time options; each is applied where permitted, else a warning and normal priority."""

    model_config = STRICT
    priority: int = Field(0, ge=0, le=99, description="SCHED_FIFO priority; 0 = normal")
    lock_memory: bool = Field(False, description="mlockall(MCL_CURRENT | MCL_FUTURE)")
    cpu: int | None = Field(None, ge=0, description="pin the scan to this CPU")
    timer_slack_ns: int | None = Field(1, ge=1, description="PR_SET_TIMERSLACK, ns")
    helper_priority: int = Field(0, ge=0, le=98, description="SCHED_FIFO priority of the "
                                 "helper processes (field I/O, telemetry); 0 = normal. Below "
                                 "priority: a helper never competes with the scan")

    @model_validator(mode="after")
    def _helpers_below_the_scan(self) -> Realtime:
        if self.helper_priority and self.helper_priority >= self.priority:
            raise ValueError(f"helper_priority {self.helper_priority} must be below priority "
                             f"{self.priority} (the scan's), or 0 (normal priority)")
        return self


class Scan(BaseModel):
    model_config = STRICT
    period: float = Field(ge=0.001, le=60.0, description="scan period, s (1 ms to 60 s)")
    watchdog_periods: int = Field(10, ge=2, le=1000,
                                  description="a scan this many periods late drops 'healthy'")
    realtime: Realtime = Realtime()


class State(BaseModel):
    """Thermal memory: where it is kept, how often, and what a power loss means.

    The files live in one declared place, the state directory (``state_paths``): relative
    file names resolve there, never in the working directory.
    """

    model_config = STRICT
    dir: Path | None = Field(None, description="the state directory (absolute, ~ allowed); "
                             "$STATE_DIRECTORY wins under systemd; none: "
                             "$XDG_STATE_HOME/softrelay/<relay name> (~/.local/state/...)")
    file: Path = Field(description="the thermal memory; relative: in the state directory")
    checkpoint_interval: float = Field(10.0, ge=0.1, le=3600.0, description="s")
    power_loss: Literal["freeze", "cool", "preset"] = Field(
        "cool", description="freeze: keep theta; cool: cool for the outage (wall clock); "
                            "preset: assume preset_theta"
    )
    preset_theta: float = Field(1.0, ge=0.0, le=10.0, description="theta assumed by 'preset'")

    @field_validator("dir")
    @classmethod
    def _absolute_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_absolute():
            raise ValueError(f"{str(value)!r} must be absolute: a relative one would follow "
                             "the working directory")
        return value


class Events(BaseModel):
    """The event recorder: its ring, and its file, rotated by size."""

    model_config = STRICT
    file: Path | None = Field(None, description="append-only JSON lines; relative: in the "
                              "state directory; none: memory only")
    ring_size: int = Field(4096, ge=1024, le=1_000_000)
    max_bytes: int = Field(1 << 20, ge=4096, le=1 << 30, description="the live file is "
                           "rotated (file.1, file.2, ...) before it grows past this, bytes")
    keep: int = Field(5, ge=1, le=1000, description="event files kept, the live one "
                      "included; the oldest is deleted")


@dataclass(frozen=True)
class StatePaths:
    """Where a relay's files are, absolute: what ``state_paths`` resolved."""

    dir: Path  #: the state directory
    origin: str  #: where ``dir`` came from ($STATE_DIRECTORY, state.dir, the XDG default)
    memory: Path  #: the thermal memory (state.file)
    events: Path | None  #: the event file, None: memory only
    mqtt_queue: Path | None  #: the MQTT queue, None: no MQTT


def state_dir(config: RelayConfig, environ: Mapping[str, str] | None = None
              ) -> tuple[Path, str]:
    """(the state directory, where it came from): ``$STATE_DIRECTORY`` (its first entry) when
    set (systemd's StateDirectory=), else ``state.dir``, else
    ``$XDG_STATE_HOME/softrelay/<relay name>`` with XDG's default ``~/.local/state``."""
    env = os.environ if environ is None else environ
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd and Path(systemd).is_absolute():
        return Path(systemd), "$STATE_DIRECTORY"
    if config.state.dir is not None:
        return config.state.dir.expanduser(), "state.dir"
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # XDG: a relative value is to be ignored
        return Path(xdg) / "softrelay" / config.name, "$XDG_STATE_HOME"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "state" / "softrelay" / config.name, "the default ~/.local/state"


def state_paths(config: RelayConfig, environ: Mapping[str, str] | None = None) -> StatePaths:
    """The relay's files as absolute paths, relative names resolved in ``state_dir``.

    Kept out of the validated model on purpose: the model (and so the configuration hash
    the kept settings and the DCS see) stays the file's, the same on every machine, while
    the directory is the machine's. The relay, its helper processes and ``softrelay
    check`` all resolve through here.
    """
    base, origin = state_dir(config, environ)

    def resolve(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else base / path

    return StatePaths(
        dir=base, origin=origin, memory=resolve(config.state.file),
        events=resolve(config.events.file) if config.events.file is not None else None,
        mqtt_queue=resolve(config.mqtt.queue.file) if config.mqtt is not None else None)


class Healthy(BaseModel):
    """The self-supervision contact's declared policy. A scan stall and a failed self-test
    (event writer, thermal memory, settings keeper, I/O process) always drop it; ``drop_on``
    names what else does."""

    model_config = STRICT
    drop_on: tuple[str, ...] = Field(
        DEFAULT_DROP_ON, description="measurement_lost: any protected point blind for "
        "longer than its input_loss_delay; link_down: any field bus's link; telemetry_down: "
        "the telemetry process not running")

    @field_validator("drop_on")
    @classmethod
    def _known(cls, drop_on: tuple[str, ...]) -> tuple[str, ...]:
        for cause in drop_on:
            if cause not in OPTIONAL:
                always = " (it always drops the contact)" if cause in ALWAYS else ""
                raise ValueError(f"{cause!r} is not a cause to choose{always}: choose from "
                                 f"{', '.join(OPTIONAL)}")
        return drop_on


class SimulatedBus(BaseModel):
    """Devices of the built-in plant model (demo, tests)."""

    model_config = STRICT
    name: Name
    kind: Literal["simulated"]
    timeout: float = Field(0.1, gt=0.0, le=60.0, description="per request, s")
    max_backoff: float = Field(1.0, ge=0.0, le=600.0, description="longest wait between reads "
                               "of a bus whose every read fails, s (a protection input is "
                               "wanted back soon; a local bus costs nothing to ask)")


def _distinct(sensors, key, describe, what: str = "sensors") -> None:
    """Raise naming the first two sensors that share ``key`` (an address, a chip select)."""
    seen: dict = {}
    for sensor in sensors:
        value = key(sensor)
        if value in seen:
            raise ValueError(f"{what} {seen[value]!r} and {sensor.name!r} share "
                             f"{describe(value)}")
        seen[value] = sensor.name


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


class I2CBus(BaseModel):
    """An I2C bus (/dev/i2c-N through smbus2), or its simulated twin fed by the plant."""

    model_config = STRICT
    name: Name
    kind: Literal["i2c"]
    bus: int = Field(1, ge=0, description="N of /dev/i2c-N")
    simulated: bool = Field(False, description="chips simulated at the transaction level")
    timeout: float = Field(0.1, gt=0.0, le=60.0)
    max_backoff: float = Field(1.0, ge=0.0, le=600.0, description="longest wait between reads "
                               "of a bus whose every read fails, s (a protection input is "
                               "wanted back soon; a local bus costs nothing to ask)")
    sensors: tuple[I2CSensor, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _sensors(self) -> I2CBus:
        _distinct(self.sensors, lambda s: s.address, lambda a: f"address 0x{a:02x}")
        for sensor in self.sensors:
            if sensor.emissivity is not None and sensor.chip != "mlx90614":
                raise ValueError(f"{sensor.name}: only an MLX90614 has an emissivity")
        return self


#: SPI modes and the fastest clock each chip's datasheet allows
SPI_CHIPS = {"max31865": ((1, 3), 5_000_000), "mcp3208": ((0, 3), 2_000_000)}


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


class SpiBus(BaseModel):
    """An SPI bus (/dev/spidevB.D through spidev), or its simulated twin fed by the plant."""

    model_config = STRICT
    name: Name
    kind: Literal["spi"]
    bus: int = Field(0, ge=0, description="B of /dev/spidevB.D")
    simulated: bool = False
    timeout: float = Field(0.1, gt=0.0, le=60.0)
    max_backoff: float = Field(1.0, ge=0.0, le=600.0, description="longest wait between reads "
                               "of a bus whose every read fails, s (a protection input is "
                               "wanted back soon; a local bus costs nothing to ask)")
    max_speed_hz: int = Field(1_000_000, ge=10_000, le=50_000_000,
                              description="SPI clock of chips that do not set their own")
    sensors: tuple[Annotated[SpiSensor | AdcSensor, Field(discriminator="chip")], ...] = Field(
        min_length=1)

    @model_validator(mode="after")
    def _chip_selects(self) -> SpiBus:
        _distinct(self.sensors, lambda s: s.device, lambda d: f"chip select {d}")
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
        _distinct(self.registers, lambda r: r.name, lambda n: f"the name {n!r}", "registers")
        return self


class _ModbusLine(BaseModel):
    model_config = STRICT
    name: Name
    timeout: float = Field(0.2, gt=0.0, le=60.0, description="per request, s")
    max_backoff: float = Field(5.0, ge=0.0, le=600.0,
                               description="longest wait between reconnect attempts, s")
    simulated: bool = Field(False, description="devices simulated at the register level")
    devices: tuple[ModbusDevice, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _devices(self) -> _ModbusLine:
        _distinct(self.devices, lambda d: d.name, lambda n: f"the name {n!r}", "devices")
        _distinct(self.devices, lambda d: d.unit, lambda u: f"unit id {u}", "devices")
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


class Signal(BaseModel):
    """One value in the input image: where it is read, how often, how it is scaled."""

    model_config = STRICT
    name: Name
    bus: Name
    address: str = Field(min_length=1, description="device-specific: register, channel, ...")
    poll: float = Field(ge=0.001, le=3600.0, description="poll period, s")
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    stuck_after: int | None = Field(
        None, ge=2, le=100_000, description="this many identical readings in a row mean a "
        "frozen sensor (quality stale); for noisy analog values only; none: off")


class ThermalPoint(BaseModel):
    model_config = STRICT
    name: Name
    kind: Literal["thermal"]
    currents: tuple[Name, Name, Name] | None = Field(
        None, description="signals of IL1, IL2, IL3 (RMS A)")
    angles: tuple[Name, Name, Name] | None = Field(
        None, description="signals of the phase angles (degrees); none: magnitudes only"
    )
    samples: Name | None = Field(None, description="instead of currents: a window signal "
                                 "(an ADC's '<sensor>.window'), true RMS and phasors from it")
    settings: ThermalSettings

    @model_validator(mode="after")
    def _mode_matches_inputs(self) -> ThermalPoint:
        if (self.samples is None) == (self.currents is None):
            raise ValueError("a thermal point reads 'currents' or 'samples' (one of them)")
        if self.samples is not None and self.angles is not None:
            raise ValueError("a sampled point takes its angles from the samples: remove "
                             "'angles'")
        wanted = ("samples" if self.samples else "phasors" if self.angles else "magnitudes")
        if self.settings.input_mode != wanted:
            has = ("a sample window" if self.samples else
                   "angle signals" if self.angles else "no angle signals")
            raise ValueError(
                f"settings.input_mode is {self.settings.input_mode!r} but the point has "
                f"{has}: use {wanted!r}"
            )
        return self


class BusbarPoint(BaseModel):
    model_config = STRICT
    name: Name
    kind: Literal["busbar"]
    phases: tuple[Name, Name, Name] = Field(description="signals of the A, B, C temperatures")
    ambient: Name
    currents: tuple[Name, Name, Name] | None = None
    settings: BusbarSettings = BusbarSettings()


Point = Annotated[ThermalPoint | BusbarPoint, Field(discriminator="kind")]


class Output(BaseModel):
    """A relay coil: energised by an OR of flags (or by health), like a relay's output matrix."""

    model_config = STRICT
    name: Name
    pin: int | str = Field(description="GPIO pin (BCM number or gpiozero name)")
    flags: tuple[str, ...] = Field((), description="'<point>.<flag>' names; any one energises")
    healthy: bool = Field(False, description="the self-supervision contact: energised while "
                                             "healthy, dropped on a stall or self-test failure")
    invert: bool = Field(False, description="energised while none of the flags is set "
                                            "(a permissive)")
    latched: bool = Field(False, description="stays operated until a reset or acknowledge")
    fail_safe: bool = Field(False, description="energised in the normal state, dropped to "
                                               "operate (and when the relay is unhealthy)")
    min_pulse: float = Field(0.0, ge=0.0, le=60.0, description="s energised at the least")
    active_high: bool = True

    @field_validator("pin")
    @classmethod
    def _a_gpio_pin(cls, pin: int | str) -> int | str:
        gpio_pin(pin)  # the reason gpiozero would refuse it, now
        return pin

    @model_validator(mode="after")
    def _one_source(self) -> Output:
        if self.healthy and self.flags:
            raise ValueError("a healthy contact is driven by health alone: remove 'flags'")
        if self.healthy and (self.fail_safe or self.invert or self.latched):
            raise ValueError("a healthy contact is energised while healthy: it takes no "
                             "'fail_safe', 'invert' or 'latched'")
        if not self.healthy and not self.flags:
            raise ValueError("an output needs 'flags' (or 'healthy: true')")
        return self


class Input(BaseModel):
    """A GPIO input that issues a command, as a relay's binary input does."""

    model_config = STRICT
    name: Name
    pin: int | str
    command: Literal["reset", "acknowledge", "preset"]
    points: tuple[Name, ...] = Field((), description="points it acts on; none: all")
    preset_theta: float = Field(1.0, ge=0.0, le=10.0, description="for 'preset'")
    pull_up: bool = True

    @field_validator("pin")
    @classmethod
    def _a_gpio_pin(cls, pin: int | str) -> int | str:
        gpio_pin(pin)
        return pin


class Gpio(BaseModel):
    """Where the coils and buttons are: gpiozero's pin factory, said, never guessed."""

    model_config = STRICT
    factory: Literal["auto", "mock", "lgpio", "rpigpio", "native"] = Field(
        "auto", description="gpiozero's pin factory: mock (simulated pins), lgpio, rpigpio, "
        "native (real BCM pins; one that cannot load stops the start); auto: gpiozero's "
        "choice where a GPIO chip exists, else mock pins with a warning")


#: the role extension of Modbus/TCP Security (MB-TCP-Security, R-21/R-22): an ASN.1 UTF8String
MODBUS_ROLE_OID = "1.3.6.1.4.1.50316.802.1"
Role = Annotated[str, Field(min_length=1, max_length=64)]


class ModbusTls(BaseModel):
    """Modbus/TCP Security (the Modbus Organization's TLS profile, "mbaps"): the same map over
    TLS with mutual certificates, on a port of its own beside the plain one. A client without
    a certificate signed by ``ca`` fails the handshake; the role in its certificate (extension
    1.3.6.1.4.1.50316.802.1, a UTF8String) gives its session the level ``roles`` maps it to,
    for the life of the connection. A certificate without a role, or with one not in
    ``roles``, reads only (and an event says so). ``check`` loads the files as ``run`` does:
    relative paths are the working directory's, as MQTT's are; give absolute ones."""

    model_config = STRICT
    port: int = Field(802, ge=0, le=65535, description="802 (IANA's mbaps) needs root or "
                      "CAP_NET_BIND_SERVICE; 0: any free port (tests)")
    cert: Path = Field(description="this relay's certificate (PEM), with its chain")
    key: Path = Field(description="this relay's private key (PEM), readable by the service only")
    ca: Path = Field(description="CA certificate(s) (PEM) a client's certificate must chain to")
    min_version: Literal["1.2", "1.3"] = Field("1.2", description="the oldest TLS version "
                                               "accepted (1.3 is negotiated when the client "
                                               "offers it); 1.3: a 1.2-only client is refused")
    roles: dict[Role, Level] = Field(default_factory=dict, description="certificate role -> "
                                     "access level (0 read, 1 operator, 2 engineer); exact, "
                                     "case-sensitive; a role not listed reads only")
    crl: Path | None = Field(None, description="certificate revocation list(s) (PEM) of "
                             "every CA in ca: a revoked client certificate is refused, and "
                             "one whose CA has no CRL here, or whose CRL is out of date; "
                             "read at each start of the TLS front; none: no revocation check")
    handshake_timeout: float = Field(5.0, gt=0.0, le=300.0, description="s a client may take "
                                     "over its handshake before it is dropped (a handshake "
                                     "in progress holds a place: modbus.max_per_peer per "
                                     "address)")


class ModbusSlave(BaseModel):
    """The Modbus/TCP slave the DCS polls (``softrelay regmap`` prints its map)."""

    model_config = STRICT
    host: str = Field("127.0.0.1", description="bind address (IPv4); 0.0.0.0: every interface")
    port: int | None = Field(5020, ge=0, le=65535, description="502 needs root or the "
                             "CAP_NET_BIND_SERVICE capability; 0: any free port (tests); "
                             "null: no plain port (TLS only: give tls)")
    tls: ModbusTls | None = Field(None, description="Modbus/TCP Security on a port of its "
                                  "own (802); none: plain Modbus/TCP only")
    units: tuple[int, ...] = Field((), description="unit ids that see the whole map; empty: "
                                   "any (unless groups are given). Others get exception 0x0B "
                                   "(gateway target failed to respond)")
    groups: dict[int, tuple[Name, ...]] = Field(
        default_factory=dict, description="unit id -> points it shows, laid out from the first "
        "block as if each group were a relay of its own (the same template for every motor)")
    max_connections: int = Field(16, ge=1, le=256)
    idle_timeout: float = Field(60.0, gt=0.0, le=86400.0, description="s without a request "
                                "before a connection is closed")
    frame_timeout: float = Field(2.0, gt=0.0, le=60.0, description="s a frame may stay "
                                 "half-received before the connection is dropped")
    allow: tuple[str, ...] = Field((), description="IPv4 networks allowed to connect "
                                   "('10.1.0.0/16'); empty: any")
    max_per_peer: int | None = Field(None, ge=1, le=256, description="connections one IPv4 "
                                     "address may hold (a newcomer beyond closes that "
                                     "address's longest idle); none: half of max_connections "
                                     "(at least 1); above max_connections: max_connections")

    @model_validator(mode="after")
    def _networks(self) -> ModbusSlave:
        import ipaddress

        try:
            ipaddress.IPv4Address(self.host)
        except ValueError:
            raise ValueError(f"host {self.host!r} is not an IPv4 address") from None
        for network in self.allow:
            try:
                ipaddress.IPv4Network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"allow: {network!r} is not an IPv4 network ({exc})") from None
        if any(not 0 <= u <= 255 for u in (*self.units, *self.groups)):
            raise ValueError("unit ids are 0..255")
        both = set(self.units) & set(self.groups)
        if both:
            raise ValueError(f"unit {min(both)} is in 'units' and in 'groups'")
        for unit, names in self.groups.items():
            if not names:
                raise ValueError(f"groups: unit {unit} shows no point")
        if self.port is None and self.tls is None:
            raise ValueError("port is null and no tls is given: the slave would serve "
                             "nobody (give a port, or tls, or leave modbus out)")
        return self


#: the largest code: one is written as a uint32 to relay.unlock
MAX_CODE = 0xFFFFFFFF
#: the replacement of the section before access levels (printed when a file still has it)
UNLOCK_MIGRATION = (
    "replaced by 'access:' (access levels, lockout): settings, preset theta and "
    "clear_statistics now need the engineer's code, reset and acknowledge the operator's. "
    "Write instead 'access: {engineer: {<the unlock section's code or code_env>}, minutes: "
    "<its minutes>, operator: {code_env: ...}}'; a plant that resets from the DCS without a "
    "code says so: 'access: {levels: {reset: 0, acknowledge: 0}}'")


def code_from_text(text: str, where: str) -> int:
    """A code from an environment variable's text: a whole number 1..4294967295 (decimal,
    or 0x hex). The error names ``where``, never the text."""
    try:
        value = int(text.strip(), 0)
    except ValueError:
        raise ValueError(f"{where} is not a code: give a whole number 1..{MAX_CODE}") from None
    if not 1 <= value <= MAX_CODE:
        raise ValueError(f"{where}: a code is 1..{MAX_CODE}")
    return value


class AccessCode(BaseModel):
    """One access level's code: in the file (``code``) or in an environment variable
    (``code_env``, which wins when set; ``code`` is then the fallback). A variable that is not
    set with no ``code`` to fall back on, or that holds no code, is an error (``check`` and
    ``run`` refuse it): the level would otherwise be silently unreachable."""

    model_config = STRICT
    code: int | None = Field(None, ge=1, le=MAX_CODE, description="the code, in the file; "
                             "see code_env to keep it out")
    code_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                 description="environment variable holding the code; wins "
                                 "over code when set")

    @field_validator("code_env")
    @classmethod
    def _env_holds_a_code(cls, name: str | None, info) -> str | None:
        if name is None:
            return None
        text = os.environ.get(name, "")
        if text.strip():
            code_from_text(text, f"${name}")
        elif info.data.get("code") is None:
            raise ValueError(f"${name} is not set (and no code to fall back on): set it in "
                             "the service's environment file, or give code")
        return name

    @model_validator(mode="after")
    def _some_code(self) -> AccessCode:
        if self.code is None and self.code_env is None:
            raise ValueError("give code or code_env (or leave the level out: nobody reaches "
                             "it over Modbus)")
        return self

    def resolve(self) -> int:
        """The code in force: the variable's when set, else the file's. Never logged."""
        if self.code_env:
            text = os.environ.get(self.code_env, "")
            if text.strip():
                return code_from_text(text, f"${self.code_env}")
        if self.code is None:
            raise ValueError(f"${self.code_env} is not set (and no code to fall back on)")
        return self.code

    def origin(self) -> str:
        """Where the code comes from, for ``check`` (never the code)."""
        if self.code_env and os.environ.get(self.code_env, "").strip():
            return f"code from ${self.code_env}"
        if self.code_env:
            return f"code in the file (${self.code_env} is not set)"
        return "code in the file"


class CommandLevels(BaseModel):
    """The level each write needs over Modbus (0 read, 1 operator, 2 engineer). 0 lets any
    admitted client do it without a code: say so only on purpose."""

    model_config = STRICT
    reset: Level = 1
    acknowledge: Level = 1
    preset: Level = 2
    clear_statistics: Level = 2
    settings: int = Field(2, ge=1, le=2, description="settings always need a code")


class Lockout(BaseModel):
    """Wrong codes from one peer (an address, or the RTU line) before its codes are refused,
    and for how long: the first lockout, doubled at each next one, up to the longest."""

    model_config = STRICT
    attempts: int = Field(5, ge=1, le=100, description="wrong codes in a row")
    first_minutes: float = Field(1.0, gt=0.0, le=1440.0)
    max_minutes: float = Field(60.0, gt=0.0, le=10080.0)

    @model_validator(mode="after")
    def _order(self) -> Lockout:
        if self.max_minutes < self.first_minutes:
            raise ValueError(f"max_minutes ({self.max_minutes:g}) is shorter than "
                             f"first_minutes ({self.first_minutes:g})")
        return self


class LocalRemote(BaseModel):
    """A front-panel local/remote switch on a GPIO input: its contact closed (the input
    active) is *local*: every write over Modbus is refused (the event cursor excepted)."""

    model_config = STRICT
    pin: int | str
    pull_up: bool = Field(True, description="true: the contact pulls the pin to ground")


class Access(BaseModel):
    """Access levels over Modbus (TCP and RTU), as a relay's: each level's code, how long a
    session keeps it, what each write needs, the lockout, an optional local/remote switch.
    Without the section no level has a code: Modbus reads, and does only what ``levels``
    gives level 0."""

    model_config = STRICT
    operator: AccessCode | None = Field(None, description="level 1: reset, acknowledge")
    engineer: AccessCode | None = Field(None, description="level 2: settings, preset theta, "
                                        "clear statistics (and all of level 1)")
    minutes: float = Field(10.0, gt=0.0, le=1440.0, description="a session keeps its level "
                           "this long after its code (and never past its connection)")
    levels: CommandLevels = CommandLevels()
    lockout: Lockout = Lockout()
    local_remote: LocalRemote | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Access:
        if self.operator is not None and self.engineer is not None:
            try:
                same = self.operator.resolve() == self.engineer.resolve()
            except ValueError:
                return self  # reported at the code itself
            if same:
                raise ValueError("the operator's and the engineer's codes are the same: "
                                 "give each level its own")
        return self

    def codes(self) -> dict[int, int | None]:
        """level -> the code in force (None: that level has no code)."""
        return {1: self.operator.resolve() if self.operator else None,
                2: self.engineer.resolve() if self.engineer else None}


class ModbusRtuSlave(BaseModel):
    """The same register map on an RS-485 line, as an RTU slave."""

    model_config = STRICT
    port: str = Field(min_length=1, description="serial device, e.g. /dev/ttyUSB0")
    unit: int = Field(1, ge=1, le=247, description="this relay's address on the line")
    baudrate: int = Field(19200, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1


class PlantMotor(BaseModel):
    """A simulated motor: its own thermal physics, a load profile and a breaker."""

    model_config = STRICT
    name: Name
    rated_current: float = Field(gt=0.0, description="A")
    load_profile: tuple[tuple[float, float], ...] = Field(
        description="(seconds, per-unit load) steps, repeated; the last entry's time is the cycle"
    )
    trip_coil: Name = Field(description="output that opens the breaker")
    close_coil: Name | None = Field(None, description="output that lets the breaker close")
    restart_delay: float = Field(2.0, ge=0.0, description="s from permissive to close")
    unbalance: float = Field(0.0, ge=0.0, le=0.5, description="per-unit unbalance of phase C")


class JointFault(BaseModel):
    model_config = STRICT
    phase: Literal["A", "B", "C"]
    start: float = Field(0.0, ge=0.0, description="s after start")
    extra_rise: float = Field(gt=0.0, description="C at rated current, when fully developed")
    develop_time: float = Field(60.0, gt=0.0, description="time constant of the fault, s")


class PlantBusbar(BaseModel):
    """A simulated busbar: three phase conductors and an ambient, optionally a bad joint."""

    model_config = STRICT
    name: Name
    ambient: float = Field(25.0, description="C")
    rated_current: float = Field(gt=0.0, description="A")
    load: float = Field(0.8, ge=0.0, le=2.0, description="per-unit")
    rise_at_rated: float = Field(30.0, gt=0.0, description="C over ambient at rated current")
    tau: float = Field(120.0, gt=0.0, description="thermal time constant, s")
    noise: float = Field(0.2, ge=0.0, description="sensor noise, C (standard deviation)")
    joint_fault: JointFault | None = None


class PlantFault(BaseModel):
    """A fault injected into a simulated device at a plant time (the seed's troubleshooting
    matrix: nack, refused, slow; sentinel, stuck, noisy, garbage)."""

    model_config = STRICT
    address: str = Field(min_length=1, description="'simulated' bus: a plant address; "
                         "Modbus: '<device>.<quantity>' or '<device>'; I2C, SPI: '<sensor>' or "
                         "'<sensor>.<quantity>'; '*': the whole bus")
    bus: Name
    kind: Literal["nack", "refused", "slow", "sentinel", "stuck", "noisy", "garbage"]
    start: float = Field(0.0, ge=0.0, description="plant s")
    stop: float | None = Field(None, gt=0.0, description="plant s; none: never cleared")
    sigma: float = Field(5.0, gt=0.0, description="for noisy, C or A")


class Plant(BaseModel):
    model_config = STRICT
    speed: float = Field(1.0, gt=0.0, le=1000.0, description="plant time / real time")
    frequency: float = Field(50.0, ge=16.0, le=400.0, description="system frequency, Hz, of "
                             "the currents simulated ADCs sample")
    motors: tuple[PlantMotor, ...] = ()
    busbars: tuple[PlantBusbar, ...] = ()
    faults: tuple[PlantFault, ...] = ()


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


#: a point is measurement lost after this many polls of its slowest measuring signal
INPUT_LOSS_POLLS = 3


def measuring_signals(point: ThermalPoint | BusbarPoint) -> list[str]:
    """The signals whose loss leaves a point blind: a thermal point's currents (and angles) or
    sample window; a busbar's phase temperatures (a lost ambient has its fallback, and the
    busbar's currents only feed the joint indicator)."""
    if point.kind == "busbar":
        return list(point.phases)
    return [*(point.currents or ()), *(point.angles or ()),
            *((point.samples,) if point.samples else ())]


def derived_input_loss_delay(point: ThermalPoint | BusbarPoint, polls: dict[str, float],
                             scan_period: float) -> float:
    """input_loss_delay when the file leaves it out: 3 x the longest poll period of the
    point's measuring signals (``polls``: signal -> its poll period, or its bus's timeout when
    longer: a read that times out holds the next poll back), and never less than 3 scan
    periods (the core sees a poll only at a scan). One failed or late reading must not say
    blind; three in a row do. Signals that do not exist are left to ``references``."""
    longest = max((polls[n] for n in measuring_signals(point) if n in polls), default=0.0)
    return INPUT_LOSS_POLLS * max(longest, scan_period)


def flag_of(point: ThermalPoint | BusbarPoint, flag: str) -> ThermalFlag | BusbarFlag | None:
    """The flag a point's ``flag`` name denotes, or None."""
    table = THERMAL_FLAGS if point.kind == "thermal" else BUSBAR_FLAGS
    return table.get(flag)


def window_signals_of(config: RelayConfig) -> list[str]:
    """The signals that are sample windows (an ADC's '<sensor>.window' on an SPI bus), in
    configuration order."""
    spi = {b.name for b in config.buses if b.kind == "spi"}
    return [s.name for s in config.signals if s.bus in spi and s.address.endswith(".window")]


def adc_problems(sensor: AdcSensor, bus: SpiBus, sampling: Sampling
                 ) -> list[tuple[tuple, str]]:
    """Why an ADC cannot sample the configured windows, as (key path, reason)."""
    from softrelay.field.spi.mcp3208 import BITS_PER_CONVERSION
    from softrelay.field.spi.port import MAX_TRANSFERS

    problems: list[tuple[tuple, str]] = []
    interval = 1e6 / (sampling.frequency * sampling.samples_per_cycle * 3)
    transfer = BITS_PER_CONVERSION * 1e6 / sensor.speed(bus) + sensor.overhead_us
    if transfer > interval:
        problems.append((("max_speed_hz",), f"a conversion takes {transfer:.1f} us at "
                         f"{sensor.speed(bus)} Hz, longer than the {interval:.1f} us between "
                         "conversions the sampling needs"))
    if 3 * sampling.window_length > MAX_TRANSFERS:
        problems.append((("device",), f"a window of 3 x {sampling.window_length} conversions "
                         f"exceeds the {MAX_TRANSFERS} transfers of one SPI message: fewer "
                         "sampling.cycles or samples_per_cycle"))
    for key in sensor.simulate:
        if key not in {f"ch{c}" for c in sensor.channels}:
            problems.append((("simulate", key), f"not an input of this ADC (channels "
                             f"{', '.join(f'ch{c}' for c in sensor.channels)})"))
    return problems


def pin_problems(config: RelayConfig) -> list[tuple[tuple, str]]:
    """GPIO pins taken twice (under any of their names): two coils on one pin, an input on a
    coil's pin, two inputs on one pin. gpiozero refuses a pin already in use when the relay
    starts; this says which entries share it."""
    errors: list[tuple[tuple, str]] = []
    taken: dict[str, tuple[str, int, str]] = {}
    for section in ("outputs", "inputs"):
        for i, item in enumerate(getattr(config, section)):
            pin = gpio_pin(item.pin)
            if pin in taken:
                other, j, name = taken[pin]
                what = "coil" if other == "outputs" else "input"
                also = "" if str(item.pin) in (pin, pin[4:]) else f" ({item.pin!r})"
                errors.append(((section, i, "pin"), f"{pin}{also} is already the pin of "
                               f"{what} {name!r} ({other}[{j}]): one pin, one "
                               f"{'coil' if section == 'outputs' else 'device'}"))
            else:
                taken[pin] = (section, i, item.name)
    return errors


def references(config: RelayConfig) -> list[tuple[tuple, str]]:
    """Cross-reference errors as (key path, reason); empty when the names tie up."""
    errors: list[tuple[tuple, str]] = []

    def unique(section: str, items) -> dict:
        seen: dict = {}
        for i, item in enumerate(items):
            if item.name in seen:
                first = f"{section}[{seen[item.name]}]"
                errors.append(((section, i, "name"),
                               f"{item.name!r} is already the name of {first}"))
            else:
                seen[item.name] = i
        return {item.name: item for item in items}

    if config.snmp is not None:
        for i, flag in enumerate(config.snmp.flags):
            if flag not in THERMAL_FLAGS and flag not in BUSBAR_FLAGS:
                errors.append((("snmp", "flags", i), f"{flag!r} is no flag (thermal: "
                               f"{', '.join(THERMAL_FLAGS)}; busbar: {', '.join(BUSBAR_FLAGS)})"))
    buses = unique("buses", config.buses)
    signals = unique("signals", config.signals)
    points = unique("points", config.points)
    outputs = unique("outputs", config.outputs)
    unique("inputs", config.inputs)

    quantities = CHIP_QUANTITIES
    from softrelay.field.modbus.profiles import quantities as modbus_quantities

    # bus -> device -> its quantities, each device's register map built once
    modbus_registers = {b.name: {d.name: modbus_quantities(d) for d in b.devices}
                        for b in config.buses if b.kind in ("modbus_tcp", "modbus_rtu")}
    for i, signal in enumerate(config.signals):
        if signal.bus not in buses:
            errors.append((("signals", i, "bus"), f"no bus named {signal.bus!r}"))
        elif buses[signal.bus].kind in ("i2c", "spi"):
            sensors = {s.name: s for s in buses[signal.bus].sensors}
            name, _, quantity = signal.address.rpartition(".")
            sensor = sensors.get(name)
            if sensor is None or quantity not in quantities[sensor.chip]:
                known = ", ".join(f"{s.name}.{q}" for s in sensors.values()
                                  for q in quantities[s.chip])
                errors.append((("signals", i, "address"),
                               f"{signal.address!r} is not on bus {signal.bus!r} ({known})"))
        elif buses[signal.bus].kind in ("modbus_tcp", "modbus_rtu"):
            devices = modbus_registers[signal.bus]
            name, _, quantity = signal.address.partition(".")
            if name not in devices:
                errors.append((("signals", i, "address"),
                               f"{signal.address!r}: bus {signal.bus!r} has no device "
                               f"{name!r} (devices: {', '.join(devices)})"))
            elif quantity not in devices[name]:
                errors.append((("signals", i, "address"),
                               f"{signal.address!r}: device {name!r} has no register "
                               f"{quantity!r} ({', '.join(devices[name])})"))
    window_signals = set(window_signals_of(config))
    for i, point in enumerate(config.points):
        sampled = point.kind == "thermal" and point.samples is not None
        if sampled and point.samples in signals and point.samples not in window_signals:
            errors.append((("points", i, "samples"), f"signal {point.samples!r} is not a "
                           "sample window (an MCP3208's '<sensor>.window')"))
        fields = (("currents", "angles", "samples") if point.kind == "thermal"
                  else ("phases", "ambient", "currents"))
        for field in fields:
            names = getattr(point, field)
            if names is None:
                continue
            for j, name in enumerate((names,) if isinstance(names, str) else names):
                path = ("points", i, field) if isinstance(names, str) else ("points", i, field, j)
                if name not in signals:
                    errors.append((path, f"no signal named {name!r}"))
                elif name in window_signals and field != "samples":
                    errors.append((path, f"{name!r} is a sample window: a thermal point reads "
                                         "it as 'samples'"))
    for i, output in enumerate(config.outputs):
        for j, ref in enumerate(output.flags):
            point_name, _, flag = ref.rpartition(".")
            point = points.get(point_name)
            if point is None:
                errors.append((("outputs", i, "flags", j),
                               f"{ref!r}: no point named {point_name!r}"))
            elif flag_of(point, flag) is None:
                known = ", ".join(sorted(THERMAL_FLAGS if point.kind == "thermal"
                                         else BUSBAR_FLAGS))
                errors.append((("outputs", i, "flags", j),
                               f"{ref!r}: a {point.kind} point has no flag {flag!r} "
                               f"(flags: {known})"))
    errors += pin_problems(config)
    for unit, names in (config.modbus.groups.items() if config.modbus else ()):
        for j, name in enumerate(names):
            if name not in points:
                errors.append((("modbus", "groups", unit, j), f"no point named {name!r}"))
    for i, item in enumerate(config.inputs):
        for j, name in enumerate(item.points):
            if name not in points:
                errors.append((("inputs", i, "points", j), f"no point named {name!r}"))
    for i, bus in enumerate(config.buses):
        for j, sensor in enumerate(bus.sensors if bus.kind == "spi" else ()):
            if sensor.chip == "mcp3208":
                errors += [(("buses", i, "sensors", j, *path), why)
                           for path, why in adc_problems(sensor, bus, config.sampling)]
        if (bus.kind == "simulated" or getattr(bus, "simulated", False)) and config.plant is None:
            errors.append((("buses", i, "kind" if bus.kind == "simulated" else "simulated"),
                           "a simulated bus needs a plant (the 'plant' section)"))
    if config.plant is not None:
        for i, fault in enumerate(config.plant.faults):
            if fault.bus not in buses:
                errors.append((("plant", "faults", i, "bus"), f"no bus named {fault.bus!r}"))
            elif not (buses[fault.bus].kind == "simulated"
                      or getattr(buses[fault.bus], "simulated", False)):
                errors.append((("plant", "faults", i, "bus"),
                               f"faults are injected on simulated buses; {fault.bus!r} is a "
                               f"real {buses[fault.bus].kind!r} bus"))
            elif buses[fault.bus].kind in ("i2c", "spi"):
                from softrelay.sim.chip_faults import NOT_ON, REFUSED_ON_CHIP, BusFaults

                bus = buses[fault.bus]
                chips = BusFaults(bus.kind, {s.name: CHIP_QUANTITIES[s.chip]
                                             for s in bus.sensors}, bus.timeout,
                                  refused={s.name: REFUSED_ON_CHIP.get(s.chip, {})
                                           for s in bus.sensors})
                try:
                    chips.check(fault.address, fault.kind)
                except ValueError as exc:
                    errors.append((("plant", "faults", i,
                                    "kind" if fault.kind in NOT_ON[bus.kind] else "address"),
                                   str(exc)))
            elif buses[fault.bus].kind != "simulated" and fault.address != "*":
                device = fault.address.partition(".")[0]
                names = [d.name for d in buses[fault.bus].devices]
                if device not in names:
                    errors.append((("plant", "faults", i, "address"),
                                   f"{fault.address!r}: bus {fault.bus!r} has no device "
                                   f"{device!r} (devices: {', '.join(names)})"))

        for i, motor in enumerate(config.plant.motors):
            for field in ("trip_coil", "close_coil"):
                name = getattr(motor, field)
                if name is not None and name not in outputs:
                    errors.append((("plant", "motors", i, field), f"no output named {name!r}"))
    return errors
