"""Relay coils: the output matrix, from flags to GPIO, with relay-like contact behaviour.

Each coil is energised by an OR of ``<point>.<flag>`` flags (or, inverted, while none is set: a
permissive), optionally latched until a reset or acknowledge, optionally fail-safe (energised in
the normal state, dropped to operate, so that a dead relay operates too), with a minimum pulse
time. The healthy contact follows self-supervision alone.

Contract: ``drive`` runs in the scan after the core and only writes a pin when its state
changes; ``safe_state`` de-energises every coil (for a fail-safe coil that is its operated
state) and is safe to call twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gpiozero import Device, OutputDevice
from gpiozero.pins.mock import MockFactory

from softrelay.config.schema import Output, flag_of
from softrelay.core import ProtectionCore


def pin_factory() -> object:
    """The pin factory: gpiozero's own where GPIO exists, else a MockFactory (demo, tests).

    GPIOZERO_PIN_FACTORY=mock forces the mock on a Pi; any other value is gpiozero's choice.
    """
    if os.environ.get("GPIOZERO_PIN_FACTORY") == "mock" or not (
        Path("/dev/gpiochip0").exists() or Path("/dev/gpiomem").exists()
    ):
        return MockFactory()
    return Device._default_pin_factory()


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

    def __init__(self, outputs: Sequence[Output], point_index: dict[str, tuple[str, int, object]],
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
                sources.append((table, row, int(flag_of(point, flag))))
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
