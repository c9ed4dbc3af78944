"""The command vocabulary: what a source (a GPIO input, a Modbus write, the terminal) may ask
of the relay, and the two interfaces it hands its asking to.

Pure data and protocols: the queue that applies commands at the start of a scan
(``relay.commands.CommandQueue``) and the settings service (``relay.settings``) implement the
interfaces; the sources (``gpio.buttons``, ``modbus.writes``) are given them and never import
the relay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from softrelay.core.settings import BusbarSettings, ThermalSettings

KINDS = ("reset", "acknowledge", "preset", "clear_statistics")


@dataclass(frozen=True)
class Request:
    """One command, as its source words it; refused here (``ValueError``) when it is not one
    the relay knows."""

    kind: str  #: reset, acknowledge, preset, clear_statistics
    points: tuple[str, ...] = ()  #: thermal points it acts on; () = all (clear_statistics: ())
    value: float = 0.0  #: theta, for preset
    source: str = "local"  #: gpio:<name>, modbus, terminal, ...

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown command {self.kind!r} (one of {', '.join(KINDS)})")
        if self.kind == "preset" and not 0.0 <= self.value <= 10.0:
            raise ValueError(f"preset theta {self.value!r} outside 0..10")
        if self.kind == "clear_statistics" and self.points:
            raise ValueError("clear_statistics acts on the scan, not on points")


class Commands(Protocol):
    """Where a source puts a command: applied at the start of the next scan (any thread)."""

    def put(self, request: Request) -> None: ...


class SettingsChanges(Protocol):
    """Where a source puts a point's new settings: ``current`` is what each point runs on
    now, ``put`` queues a whole new settings object for the next scan (any thread)."""

    @property
    def current(self) -> Mapping[str, ThermalSettings | BusbarSettings]: ...

    def put(self, point: str, settings: ThermalSettings | BusbarSettings,
            source: str = "local") -> None: ...
