"""Events over Modbus: a window of 8 events in the input registers, read and advanced by the DCS.

The DCS writes ``relay.event_cursor`` (a holding register pair) with the number of the last
event it has; the window (``relay.event<k>_*``, input registers 30..85) then shows the 8 events
after it, oldest first; with the cursor at 0 it shows the newest 8. Reading the window and
writing the last number read walks through every event without losing one; a gap in the numbers
says the ring (at least 1 024 events) overflowed before the DCS came back. Unused rows read 0.

Each event: number (uint32), wall-clock time (uint32 seconds since 1970, then uint16
milliseconds), kind and source as codes (uint16): the tables are ``KINDS`` and
``event_sources(config)``, exported with the map (``softrelay regmap --format json``:
``event_kinds``, ``event_sources``); the text stays in the event file and journal.
"""

from __future__ import annotations

import numpy as np

from softrelay.config.relay import RelayConfig
from softrelay.core import CHANNEL_NAMES, BusbarFlag, ChannelFault, ThermalFlag, flag_bits

WINDOW = 8
FIRST = 30  #: input register of the window's first event
WORDS = 7  #: registers per event (the window: 30..85, one read of 56)
EVENT_WINDOW = np.dtype([("seq", "<f8"), ("time", "<f8"), ("ms", "<f8"), ("kind", "<f8"),
                         ("source", "<f8")])
#: kind code -> name (0: another kind)
KINDS = ["other", "pickup", "dropout", "fault", "fault cleared", "command", "settings",
         "system", "overrun"]
SYSTEM_SOURCES = ["relay", "scan", "healthy", "memory", "realtime", "modbus", "unlock",
                  "settings"]
#: sources added in map version 2: the relay's helpers, then (per point and bus, below) the
#: new flags and the buses' links
SYSTEM_SOURCES_2 = ["companion", "telemetry", "events"]
#: flags of map version 1 (bits below these); later flags are numbered after everything of
#: version 1, so a code once given keeps its meaning
FLAGS_1 = {"thermal": 10, "busbar": 7}


def _flags(kind: str, version: int) -> list[str]:
    flags = flag_bits(ThermalFlag if kind == "thermal" else BusbarFlag)
    first = FLAGS_1[kind]
    return [name for name, bit in flags if (bit < 1 << first) == (version == 1)]


def event_sources(config: RelayConfig) -> list[str]:
    """Source code -> the event source it stands for (0: any other). Append-only: what a
    later map version adds is numbered after everything an earlier one had."""
    sources = ["other", *SYSTEM_SOURCES]
    for command in ("reset", "acknowledge", "preset"):
        sources.append(f"{command} all")
    for point in config.points:
        sources.append(point.name)  # its settings changes
        sources += [f"{point.name}.{flag}" for flag in _flags(point.kind, 1)]
        if point.kind == "thermal":
            sources += [f"{c} {point.name}" for c in ("reset", "acknowledge", "preset")]
        else:
            sources += [f"{point.name}.{c}.{fault}" for c in CHANNEL_NAMES
                        for fault, _ in flag_bits(ChannelFault)]
    sources += [f"coil.{o.name}" for o in config.outputs]
    # map version 2
    sources += SYSTEM_SOURCES_2
    for point in config.points:
        sources += [f"{point.name}.{flag}" for flag in _flags(point.kind, 2)]
    sources += [f"bus.{b.name}" for b in config.buses]
    return sources


class EventWindow:
    """The window's rows, refreshed (by the scan's publisher) when events or the cursor
    moved. ``cursor`` is set by the Modbus write worker."""

    def __init__(self, recorder, sources: list[str]) -> None:
        self.recorder = recorder
        self.codes = {name: code for code, name in enumerate(sources)}
        self.kinds = {name: code for code, name in enumerate(KINDS)}
        self.table = np.zeros(WINDOW, EVENT_WINDOW)
        self.cursor = 0
        self._shown: tuple[int, int] | None = None

    def refresh(self) -> bool:
        """Refill the rows if needed; True when they changed."""
        key = (self.cursor, self.recorder.next_seq)
        if key == self._shown:
            return False
        self._shown = key
        events = (self.recorder.since(self.cursor)[:WINDOW] if self.cursor
                  else self.recorder.newest(WINDOW))
        self.table[:] = 0
        for row, event in zip(self.table, events, strict=False):
            seconds = int(event.wall)
            row["seq"] = event.seq
            row["time"] = seconds
            row["ms"] = int((event.wall - seconds) * 1000)
            row["kind"] = self.kinds.get(event.kind, 0)
            source = event.source
            if event.kind == "command":  # "reset motor1", "reset all", "preset m1,m2"
                source = source if source in self.codes else source.split(",")[0]
            row["source"] = self.codes.get(source, 0)
        return True
