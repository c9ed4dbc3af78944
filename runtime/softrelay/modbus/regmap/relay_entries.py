"""The relay's own entries of the map: its identity, scan counters and timing, health and
self-supervision, access, the whole-relay commands and the unlock register (the global block at
0..99 of each table), the event window (``modbus.event_window``), and each field bus's link
(after the last extension area). Their addresses are the tables' own, committed here: an
address, once given, keeps its meaning (``layout``).
"""

from __future__ import annotations

from softrelay import __version__
from softrelay.modbus.event_window import FIRST as EVENTS_FIRST
from softrelay.modbus.event_window import WINDOW
from softrelay.modbus.event_window import WORDS as EVENT_WORDS
from softrelay.modbus.regmap.layout import BUS_BLOCK, BUS_FIRST, Entry

#: (quantity, table, offset, type, unit, description): input registers and discrete inputs
GLOBAL_READINGS = [
    ("map_version", "input_register", 0, "uint16", "", "version of this register map"),
    ("firmware_major", "input_register", 1, "uint16", "", "softrelay version, major"),
    ("firmware_minor", "input_register", 2, "uint16", "", "softrelay version, minor"),
    ("firmware_patch", "input_register", 3, "uint16", "", "softrelay version, patch"),
    ("config_hash", "input_register", 4, "uint32", "", "first 32 bits of the SHA-256 of the "
     "validated configuration: changes when any setting or mapping changes"),
    ("scans", "input_register", 6, "uint32", "", "scans run (wraps at 2^32)"),
    ("heartbeat", "input_register", 8, "uint16", "", "scans run, modulo 65536: a DCS watchdog "
     "sees it move every scan"),
    ("healthy", "input_register", 9, "uint16", "", "1 while the self-supervision is healthy"),
    ("overruns", "input_register", 10, "uint32", "", "scans that overran their period"),
    ("missed", "input_register", 12, "uint32", "", "periods skipped by overruns"),
    ("events", "input_register", 14, "uint32", "", "number of the newest event"),
    ("lateness_p99", "input_register", 16, "float32", "us", "wake-up lateness, 99th "
     "percentile"),
    ("lateness_max", "input_register", 18, "float32", "us", "wake-up lateness, largest"),
    ("execution_p99", "input_register", 20, "float32", "us", "scan execution time, 99th "
     "percentile"),
    ("execution_max", "input_register", 22, "float32", "us", "scan execution time, largest"),
    ("period", "input_register", 24, "float32", "ms", "scan period"),
    ("unlocked", "input_register", 26, "uint16", "", "1 while a session holds level 2 "
     "(engineer): settings may be written by that session"),
    ("points", "input_register", 27, "uint16", "", "protected points in the map"),
    ("healthy", "discrete_input", 0, "bool", "", "self-supervision healthy"),
    ("unlocked", "discrete_input", 1, "bool", "", "a session holds level 2 (engineer)"),
    # map version 2: self-supervision (supervision.health), so a DCS tells blind from cool
    ("supervision", "input_register", 28, "uint16", "", "self-supervision causes active now, "
     "bit k: 0 scan stalled, 1 self-test failed, 2 measurement lost, 3 link down, 4 telemetry "
     "down (set whether or not the healthy policy drops the contact for it)"),
    ("points_lost", "input_register", 29, "uint16", "", "protected points whose measurement "
     "is lost now"),
    ("links_down", "input_register", 86, "uint16", "", "field buses whose link is down now"),
    ("measurement_lost", "discrete_input", 2, "bool", "", "a protected point's measurement "
     "is lost: the relay is blind there (not cool)"),
    ("link_down", "discrete_input", 3, "bool", "", "a field bus's link is down"),
    ("self_test_failed", "discrete_input", 4, "bool", "", "a self-test failed (event writer, "
     "thermal memory, kept settings, I/O process): the healthy contact is dropped"),
    # map version 3: access levels (modbus.authority), so a DCS sees an attack or a local key
    ("wrong_codes", "input_register", 87, "uint32", "", "access codes refused as wrong since "
     "the relay started"),
    ("lockouts", "input_register", 89, "uint32", "", "lockouts of a peer after wrong codes "
     "since the relay started"),
    ("refused_writes", "input_register", 91, "uint32", "", "Modbus writes refused for want of "
     "an access level, or in local, since the relay started"),
    ("sessions", "input_register", 93, "uint16", "", "sessions (connections, the RTU line) "
     "holding an access level now"),
    ("local", "input_register", 94, "uint16", "", "1 while the local/remote switch is in "
     "local: every Modbus write is refused"),
    ("local", "discrete_input", 5, "bool", "", "the local/remote switch is in local"),
]
#: (quantity, table, offset, type, access, unit, description): commands and the unlock
GLOBAL_WRITES = [
    ("event_cursor", "holding_register", 2, "uint32", "RW", "", "the number of the last event "
     "the DCS has: the event window shows the 8 after it (0: the newest 8)"),
    ("reset_all", "coil", 0, "bool", "W", "", "write 1: reset every point (as a relay's reset "
     "button)"),
    ("acknowledge_all", "coil", 1, "bool", "W", "", "write 1: acknowledge (release latched "
     "coils whose flags have gone)"),
    ("clear_statistics", "coil", 2, "bool", "W", "", "write 1: clear the scan statistics "
     "(lateness and execution p99 and max, overruns) at the next scan; scans go on counting"),
    ("unlock", "holding_register", 0, "uint32", "W", "", "write an access level's code: this "
     "session (connection, RTU line) holds the level for access.minutes; write 0 to drop it; "
     "reads 0"),
]


#: (field, offset, type, unit, description) of one event of the window (event_window.py)
EVENT_FIELDS = [
    ("seq", 0, "uint32", "", "its number (0: no event in this row)"),
    ("time", 2, "uint32", "s", "wall-clock time, seconds since 1970-01-01 UTC"),
    ("ms", 4, "uint16", "ms", "milliseconds of that second"),
    ("kind", 5, "uint16", "", "kind code (event_kinds in the JSON map)"),
    ("source", 6, "uint16", "", "source code (event_sources in the JSON map)"),
]


def firmware_version() -> tuple[int, int, int]:
    """softrelay's version as (major, minor, patch), as input registers 1..3 show it."""
    parts = [int("".join(ch for ch in part if ch.isdigit()) or 0)
             for part in __version__.split(".")[:3]]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch


def relay_entries() -> list[Entry]:
    """The global block's readings and writes, then the event window, in that order."""
    entries: list[Entry] = []
    for quantity, table, offset, kind, unit, text in GLOBAL_READINGS:
        access = "R"
        entries.append(Entry(f"relay.{quantity}", table, offset, kind, access, text, unit,
                             source=("relay", quantity, 0)))
    for quantity, table, offset, kind, access, unit, text in GLOBAL_WRITES:
        source = ("relay", quantity, 0) if "R" in access else ("command", quantity)
        entries.append(Entry(f"relay.{quantity}", table, offset, kind, access, text, unit,
                             source=source))
    for k in range(WINDOW):
        address = EVENTS_FIRST + EVENT_WORDS * k
        for name, offset, kind, unit, text in EVENT_FIELDS:
            entries.append(Entry(f"relay.event{k}_{name}", "input_register",
                                 address + offset, kind, "R", f"event window row {k}: "
                                 f"{text}", unit, source=("events", name, k)))
    return entries


def bus_entries(bus: str, k: int) -> list[Entry]:
    """A field bus's link (``supervision.links``): up now, times it went down, and a discrete
    input while it is down."""
    base = BUS_FIRST + BUS_BLOCK * k
    return [Entry(f"bus.{bus}.link_up", "input_register", base, "uint16", "R",
                  "1 while the bus's link answers; 0 after a read in which every signal "
                  "failed", source=("links", "up", k)),
            Entry(f"bus.{bus}.link_downs", "input_register", base + 1, "uint32", "R",
                  "times the bus's link went down since the relay started",
                  source=("links", "downs", k)),
            Entry(f"bus.{bus}.link_down", "discrete_input", BUS_FIRST + k, "bool", "R",
                  "the bus's link is down", source=("links", "down", k, 0))]
