"""Relay coils: the output matrix, from flags to GPIO, with relay-like contact behaviour.

Each coil is energised by an OR of ``<point>.<flag>`` flags (or, inverted, while none is set: a
permissive), optionally latched until a reset or acknowledge, optionally fail-safe (energised in
the normal state, dropped to operate, so that a dead relay operates too), with a minimum pulse
time. The healthy contact follows self-supervision alone.

The pins are gpiozero's, through the pin factory ``gpio.factory`` names (``choose_pin_factory``):
real or simulated is said, never guessed silently.

Contract: ``drive`` runs in the scan after the core and only writes a pin when its state
changes; ``safe_state`` de-energises every coil (for a fail-safe coil that is its operated
state) and is safe to call twice.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gpiozero import OutputDevice
from gpiozero.pins.mock import MockFactory

from softrelay.config.outputs import Output
from softrelay.config.points import BusbarPoint, ThermalPoint, flag_of
from softrelay.core import ProtectionCore

#: gpiozero's pin factories by their names (``gpio.factory``), imported only when asked for
FACTORIES = {
    "mock": "gpiozero.pins.mock:MockFactory",
    "lgpio": "gpiozero.pins.lgpio:LGPIOFactory",
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
    "native": "gpiozero.pins.native:NativeFactory",
}
#: what ``auto`` tries where a GPIO chip exists, in gpiozero's order of preference
AUTO_ORDER = ("lgpio", "rpigpio", "native")
#: device nodes that say this machine has GPIO
GPIO_NODES = (Path("/dev/gpiochip0"), Path("/dev/gpiomem"))
NO_CHIP = ("no GPIO chip found: the coils are simulated (mock pins); set gpio.factory to say "
           "so")


class GpioError(RuntimeError):
    """The pin factory the configuration names cannot be loaded (one line: which, why)."""


@dataclass
class GpioChoice:
    """The pin factory that drives the coils and buttons, and how it was chosen."""

    factory: object
    name: str  #: 'mock', 'lgpio', 'rpigpio', 'native' (or 'given': the caller's)
    text: str  #: for the start-up event and ``softrelay check``
    simulated: bool  #: mock pins: nothing is operated
    warning: str = ""  #: ``auto`` fell back to mock pins


def load_factory(name: str) -> object:
    """gpiozero's pin factory ``name``, made now; ``GpioError`` naming it and why."""
    module_name, _, class_name = FACTORIES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)()
    except Exception as exc:  # an import error, or no GPIO behind the library
        raise GpioError(f"gpio.factory {name}: cannot load {class_name} ({module_name}): "
                        f"{exc.__class__.__name__}: {exc}") from None


def choose_pin_factory(name: str = "auto", nodes: tuple[Path, ...] | None = None
                       ) -> GpioChoice:
    """The pin factory of ``gpio.factory``.

    A named factory is loaded or refused (``GpioError``). ``auto``: gpiozero's own choice
    (lgpio, then rpigpio, then native) where a GPIO chip exists, else mock pins, with a
    warning that says so (a relay on mock pins operates nothing). The environment's
    GPIOZERO_PIN_FACTORY=mock still forces the mock under ``auto``. ``nodes``: the device
    nodes that mean GPIO exists (default ``GPIO_NODES``).
    """
    nodes = GPIO_NODES if nodes is None else nodes
    if name != "auto":
        factory = load_factory(name)
        return GpioChoice(factory, name, describe_factory(name), simulated=name == "mock")
    if os.environ.get("GPIOZERO_PIN_FACTORY") == "mock":
        return GpioChoice(MockFactory(), "mock", "mock pins (simulated: "
                          "GPIOZERO_PIN_FACTORY=mock, gpio.factory auto)", simulated=True)
    if not any(node.exists() for node in nodes):
        return GpioChoice(MockFactory(), "mock", "mock pins (simulated: gpio.factory auto, no "
                          "GPIO chip)", simulated=True, warning=NO_CHIP)
    failures = []
    for candidate in AUTO_ORDER:
        try:
            factory = load_factory(candidate)
        except GpioError as exc:
            failures.append(str(exc))
            continue
        return GpioChoice(factory, candidate, describe_factory(candidate, auto=True),
                          simulated=False)
    return GpioChoice(MockFactory(), "mock", "mock pins (simulated: gpio.factory auto, no pin "
                      "library loaded)", simulated=True,
                      warning="a GPIO chip exists but no pin library loaded ("
                      + "; ".join(failures) + "): the coils are simulated (mock pins); "
                      "install lgpio or set gpio.factory")


def describe_factory(name: str, auto: bool = False) -> str:
    """The pin factory ``name`` in words (what drives the coils)."""
    if name == "mock":
        return "mock pins (simulated: gpio.factory mock)"
    cls = FACTORIES[name].partition(":")[2]
    return f"{name} ({cls}, real BCM pins{', chosen by gpio.factory auto' if auto else ''})"


def factory_problem(name: str) -> str | None:
    """Why the named pin factory ``name`` cannot load on this machine (None: it can, or it is
    ``auto`` / ``mock``): ``run`` would refuse to start, so ``check`` refuses too."""
    if name in ("auto", "mock"):
        return None
    module_name = FACTORIES[name].partition(":")[0]
    try:
        importlib.import_module(module_name)
    except Exception as exc:
        return (f"{name} cannot load on this machine ({exc.__class__.__name__}: {exc}): the "
                "relay would refuse to start; install its library, or set gpio.factory")
    return None


def planned_factory(name: str, nodes: tuple[Path, ...] | None = None) -> str:
    """What would drive the coils, without opening anything (``softrelay check``)."""
    nodes = GPIO_NODES if nodes is None else nodes
    if name == "mock":
        return describe_factory("mock")
    if name != "auto":
        problem = factory_problem(name)
        return f"{name}: CANNOT LOAD ({problem})" if problem else describe_factory(name)
    if os.environ.get("GPIOZERO_PIN_FACTORY") == "mock":
        return "mock pins (simulated: GPIOZERO_PIN_FACTORY=mock, gpio.factory auto)"
    if not any(node.exists() for node in nodes):
        return "mock pins (simulated: gpio.factory auto and no GPIO chip here; set " \
               "gpio.factory to say so)"
    return ("gpio.factory auto: the first of lgpio, rpigpio, native that loads (real BCM "
            "pins)")


def pin_factory(name: str = "auto") -> object:
    """The pin factory object of ``gpio.factory`` (``choose_pin_factory``)."""
    return choose_pin_factory(name).factory


@dataclass
class Coil:
    """One output's configuration, where its flags live, and its contact state."""

    config: Output
    sources: list[tuple[str, int, int]]  #: (table, row, bit mask)
    device: OutputDevice
    demand: bool = False  #: what the flags (or health) ask for, before latch and pulse
    operated: bool = False  #: the coil's logical state (for fail-safe: de-energised)
    latched: bool = False
    on_since: float = field(default=-np.inf)

    @property
    def name(self) -> str:
        return self.config.name


class CoilBank:
    """Every configured coil; ``drive`` once per scan."""

    def __init__(self, outputs: Sequence[Output],
                 point_index: Mapping[str, tuple[str, int, ThermalPoint | BusbarPoint]],
                 *, factory: object | None = None,
                 on_change: Callable[[str, bool, float], None] | None = None) -> None:
        """``point_index`` maps a point's name to (table, row, point config)."""
        self.factory = factory if factory is not None else pin_factory()
        self.on_change = on_change
        self.healthy = False
        self.coils: list[Coil] = []
        for out in outputs:
            sources = []
            for ref in out.flags:
                point_name, _, flag = ref.rpartition(".")
                table, row, point = point_index[point_name]
                bit = flag_of(point, flag)
                assert bit is not None, f"{ref}: the configuration's check names known flags"
                sources.append((table, row, int(bit)))
            device = OutputDevice(out.pin, active_high=out.active_high, initial_value=False,
                                  pin_factory=self.factory)
            # Every coil starts de-energised: for a fail-safe coil that is "operated".
            self.coils.append(Coil(out, sources, device, operated=out.fail_safe))

    def _flags_demand(self, coil: Coil, thermal: np.ndarray, busbar: np.ndarray) -> bool:
        demand = False
        for table, row, bit in coil.sources:
            flags = thermal if table == "thermal" else busbar
            if int(flags[row]) & bit:
                demand = True
                break
        return demand != coil.config.invert

    def _evaluate(self, core: ProtectionCore) -> None:
        """Each coil's demand from this scan's flags (and health)."""
        thermal = core.thermal_outputs["flags"]
        busbar = core.busbar_outputs["flags"]
        for coil in self.coils:
            cfg = coil.config
            if cfg.healthy:
                coil.demand = self.healthy
            else:
                coil.demand = self._flags_demand(coil, thermal, busbar)
                if not self.healthy and cfg.fail_safe:
                    coil.demand = True  # an unhealthy relay lets fail-safe coils operate

    def drive(self, core: ProtectionCore, now: float) -> None:
        """Scan stage: evaluate every coil and write the pins that change."""
        self._evaluate(core)
        for coil in self.coils:
            cfg = coil.config
            if cfg.latched and coil.demand:
                coil.latched = True
            want = coil.demand or coil.latched
            if not want and coil.operated and now < coil.on_since + cfg.min_pulse:
                want = True  # hold for the minimum pulse
            if want != coil.operated:
                coil.operated = want
                if want:
                    coil.on_since = now
                energised = want != cfg.fail_safe
                coil.device.value = energised
                if self.on_change is not None:
                    self.on_change(coil.name, want, now)

    def set_healthy(self, healthy: bool) -> None:
        """Self-supervision's verdict, applied at once by the watchdog's thread: the scan may be
        the thing that stalled, so the healthy contact (and every fail-safe coil, which then
        operates) cannot wait for the next ``drive``."""
        self.healthy = healthy
        for coil in self.coils:
            if coil.config.healthy:
                coil.demand = coil.operated = healthy
                coil.device.value = healthy
            elif coil.config.fail_safe and not healthy:
                coil.operated = True
                coil.device.value = False

    def release_latches(self, core: ProtectionCore | None = None) -> list[str]:
        """Clear the latch of every latched coil whose flags have gone; their names.

        With ``core``: whose flags have gone in this scan's outputs (a reset's scan has just
        cleared the trip, so its coils are released and ``drive``, later in the same scan,
        drops them); without: as of the last ``drive``."""
        if core is not None:
            self._evaluate(core)
        released = []
        for coil in self.coils:
            if coil.latched and not coil.demand:
                coil.latched = False
                released.append(coil.name)
        return released

    def state(self) -> dict[str, bool]:
        """Each coil's logical state (operated), by name."""
        return {coil.name: coil.operated for coil in self.coils}

    def energised(self) -> dict[str, bool]:
        """Each coil's physical state, by name."""
        return {coil.name: bool(coil.device.value) for coil in self.coils}

    def safe_state(self) -> None:
        """De-energise every coil (stop, fatal error); safe to call twice."""
        for coil in self.coils:
            if not coil.device.closed:
                coil.device.value = False

    def close(self) -> None:
        self.safe_state()
        for coil in self.coils:
            coil.device.close()
