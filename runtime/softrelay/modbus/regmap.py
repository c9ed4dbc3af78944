"""The Modbus register map the DCS polls: generated from the configuration, versioned.

Layout (every address 0-based, as sent on the wire; the 6-digit Modicon reference is
``table digit`` followed by address + 1):

- a global block at 0..99 of each table: identity (map version, firmware version, a hash of the
  configuration), scan counters and timing, health, the events counter; the unlock register and
  whole-relay commands;
- a status summary from 100 of the input and of the holding registers: per point (point k at
  100 + 4 k) its main value (theta, or a busbar's largest rise) and its flag word, so one read
  of 100 registers gives 25 points (and masters that read only holding registers, as many do,
  see it too);
- one block of ``BLOCK`` (48) addresses per protected point from 4 300, in the configuration's
  order (point k at 4 300 + 48 k in every table);
- one extension area of ``EXTENSION_BLOCK`` (10) addresses per point after the last possible
  block, from ``EXTENSION`` = 4 300 + 48 x 1 050 = 54 700 (point k at 54 700 + 10 k in every
  table; the last ends at 65 200, within the 65 536 addresses): where a point's new quantities
  go once its block is full, so they are added without moving anything.

Adding a point at the end moves nothing that was there.

Every per-point quantity has an explicit offset in one committed table, ``OFFSETS`` (in its
block) or ``EXTENSION_OFFSETS`` (in its extension area), by kind of point and table; the flag
bits' discrete inputs are at the block's base + the bit. Neither the settings models' field
order nor the order of the lists below places anything: reordering a model moves no address,
and a quantity without an offset is an error at import naming it. A new setting takes a free
offset of its block (the thermal block's holding registers are free from 34, the busbar's from
46) or, when it does not fit, of its extension area, and the map version goes up.

Per point: measurements and derived values (float32) and the packed flag word (uint32) as input
registers, each flag bit again as a discrete input, commands as coils (write 1 to act; they read
0), preset theta and the settings as holding registers (settings writable only while unlocked).
32-bit values are two registers, high word first ("big" word order, ABCD); float32 is IEEE 754.
A float reads NaN when the quantity is unknown and +inf when it is unbounded (time to trip at a
current that never trips).

Map version 1. An address, once given, keeps its meaning in every later version: entries are
only added. ``MAP_VERSION`` (input register 0) changes when an entry is added, moved, retyped,
rescaled, given another unit or access, or an event code changes; a description fix keeps the
version (what a DCS reads at every address is unchanged). The demo's map is committed as
``tests/golden/regmap_demo.v<version>.json`` and compared exactly; regenerate it after a
deliberate change with ``PYTHONPATH=runtime python tests/golden_map.py`` (it refuses anything
beyond descriptions without a new version). The JSON export (``regmap`` command) is what an
integrator imports; its schema is documented in the README.

Every flag bit and every quality code is described in its own class's words (``FLAG_TEXT``,
``QUALITY_TEXT``); one without words is an error at import naming it.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import dataclass, field

from softrelay import __version__
from softrelay.config.identity import config_hash
from softrelay.config.relay import RelayConfig
from softrelay.core import (
    BusbarFlag,
    BusbarSettings,
    Quality,
    ThermalFlag,
    ThermalSettings,
)
from softrelay.core.quantities import QUANTITIES, Quantity
from softrelay.modbus.event_window import FIRST as EVENTS_FIRST
from softrelay.modbus.event_window import KINDS as EVENT_KINDS
from softrelay.modbus.event_window import WINDOW, event_sources
from softrelay.modbus.event_window import WORDS as EVENT_WORDS

MAP_VERSION = 3
WORD_ORDER = "big"  #: 32-bit values: high word first
SUMMARY = 100  #: the status summary (4 registers a point), input and holding registers
FIRST_POINT = 4300  #: the first point's block starts here in every table
BLOCK = 48  #: addresses per point in every table
#: 1 050: the summary's room (4 200 registers); the point blocks would allow 1 275
MAX_POINTS = min((FIRST_POINT - SUMMARY) // 4, (65536 - FIRST_POINT) // BLOCK)
EXTENSION = FIRST_POINT + BLOCK * MAX_POINTS  #: 54 700: the first point's extension area
EXTENSION_BLOCK = 10  #: addresses per point in the extension area of every table
#: map version 2: the field buses' links after the last extension block (bus k: input
#: registers 65 200 + 4 k, discrete input 65 200 + k)
BUS_FIRST = EXTENSION + EXTENSION_BLOCK * MAX_POINTS
BUS_BLOCK = 4
MAX_BUSES = (65536 - BUS_FIRST) // BUS_BLOCK
if EXTENSION + EXTENSION_BLOCK * MAX_POINTS > 65536:
    raise AssertionError("the extension areas do not fit in the 65 536 addresses of a table")
TABLES = ("coil", "discrete_input", "input_register", "holding_register")
REFERENCE_DIGIT = {"coil": "0", "discrete_input": "1", "input_register": "3",
                   "holding_register": "4"}
WIDTH = {"bool": 1, "uint16": 1, "int16": 1, "uint32": 2, "float32": 2}


@dataclass(frozen=True)
class Entry:
    """One value of the map."""

    name: str  #: '<point>.<quantity>' or 'relay.<quantity>'
    table: str  #: one of TABLES
    address: int  #: 0-based, as on the wire
    type: str  #: bool, uint16, int16, uint32, float32
    access: str  #: R, W (write-only command: reads 0), RW, RW-unlocked
    description: str
    unit: str = ""
    scale: float = 1.0  #: engineering value = raw x scale
    #: where the value comes from (the encoder's business; not exported)
    source: tuple = field(default=(), compare=False, repr=False)

    @property
    def width(self) -> int:
        return WIDTH[self.type]

    @property
    def reference(self) -> str:
        """The 6-digit Modicon form: 300001 for input register 0."""
        return f"{REFERENCE_DIGIT[self.table]}{self.address + 1:05d}"

    def exported(self) -> dict:
        return {"name": self.name, "table": self.table, "address": self.address,
                "reference": self.reference, "width": self.width, "type": self.type,
                "scale": self.scale, "unit": self.unit, "access": self.access,
                "description": self.description}


# ---------------------------------------------------------------- what each kind of point shows

#: the measurements and codes each kind of point shows are ``core.quantities``' (the map's
#: words, units and codings with them); their addresses are ``OFFSETS``', never that order
THERMAL_FLAGS = [f for f in ThermalFlag if f]
BUSBAR_FLAGS = [f for f in BusbarFlag if f]
#: each flag class's words for its bits (keyed by class: ThermalFlag.TRIP == BusbarFlag.WARNING
#: as numbers, so one table keyed by flag would give one of them the other's text)
FLAG_TEXT: dict[type[enum.IntFlag], dict[enum.IntFlag, str]] = {
    ThermalFlag: {
        ThermalFlag.TRIP: "trip (latched until reset when the point latches)",
        ThermalFlag.TRIP_PICKUP: "theta >= theta_trip in this scan",
        ThermalFlag.ALARM1: "theta >= theta_al1",
        ThermalFlag.ALARM2: "theta >= theta_al2",
        ThermalFlag.START_INHIBIT: "stopped and theta >= theta_inhibit: a start is not "
        "permitted",
        ThermalFlag.STARTING: "a start is in progress (I_eq divided by KST)",
        ThermalFlag.RUNNING: "I_eq >= 0.1 I_B",
        ThermalFlag.INPUT_FAULT: "currents unusable (quality, stale, NaN): theta frozen",
        ThermalFlag.RESET_REJECTED: "a reset arrived while theta >= theta_reset",
        ThermalFlag.TRIANGLE_OPEN: "magnitudes cannot close a triangle: I2 is the conservative "
        "bound",
        ThermalFlag.MEASUREMENT_LOST: "measurement lost: currents not good for "
        "input_loss_delay, the point is blind (measuring circuit failure); theta follows "
        "input_loss",
    },
    BusbarFlag: {
        BusbarFlag.WARNING: "largest rise over ambient >= warning_delta (after its pickup "
        "delay)",
        BusbarFlag.CRITICAL: "largest rise over ambient >= critical_delta (after its pickup "
        "delay)",
        BusbarFlag.IMBALANCE: "phase-to-phase delta >= imbalance_max (after its pickup delay)",
        BusbarFlag.RATE: "a phase's rate of rise >= rate_limit (after its pickup delay)",
        BusbarFlag.JOINT: "one phase hot for its current under balanced load: a suspect joint",
        BusbarFlag.SENSOR_FAULT: "at least one channel is faulted and excluded",
        BusbarFlag.AMBIENT_FAULT: "the ambient channel is unusable (faulted or excluded)",
        BusbarFlag.MEASUREMENT_LOST: "measurement lost: a phase channel faulted for "
        "input_loss_delay, that phase is not protected",
        BusbarFlag.AMBIENT_FALLBACK: "the ambient channel is faulted: rises are taken over "
        "ambient_fallback",
        BusbarFlag.TEMP_WARNING: "a valid phase >= warning_abs, whatever the ambient (after "
        "its pickup delay)",
        BusbarFlag.TEMP_CRITICAL: "a valid phase >= critical_abs, whatever the ambient (after "
        "its pickup delay)",
    },
}
#: the words for each input quality code (core.layout.Quality)
QUALITY_TEXT: dict[Quality, str] = {
    Quality.GOOD: "good", Quality.STALE: "stale", Quality.OUT_OF_RANGE: "out of range",
    Quality.IO_ERROR: "I/O error",
    Quality.SENTINEL: "sentinel (the device's no-reading value)",
}


def check_texts(texts: dict[type[enum.IntFlag], dict[enum.IntFlag, str]] = FLAG_TEXT,
                quality: dict = QUALITY_TEXT, qualities: type[enum.IntEnum] = Quality) -> None:
    """Every flag of every class and every quality code has its words, each under its own
    class. Raises ValueError naming what is missing or misplaced (checked at import)."""
    problems = []
    for cls, table in texts.items():
        problems += [f"{cls.__name__}.{f.name} has no description in FLAG_TEXT"
                     for f in cls if f and not any(k is f for k in table)]
        problems += [f"FLAG_TEXT[{cls.__name__}] holds {type(k).__name__}.{k.name}"
                     for k in table if type(k) is not cls]
    problems += [f"{qualities.__name__}.{q.name} has no description in QUALITY_TEXT"
                 for q in qualities if q not in quality]
    if problems:
        raise ValueError("register map texts: " + "; ".join(problems))


check_texts()

#: settings a DCS may not change over Modbus (they follow the wiring), shown read-only
READ_ONLY_SETTINGS = {"input_mode"}
ENUM_SETTINGS = {"input_mode": "0 phasors, 1 magnitudes, 2 samples", "latch": "0 no, 1 yes",
                 "input_loss": "0 freeze, 1 hold"}

#: Where each per-point quantity sits: offset in the point's block (FIRST_POINT + BLOCK k), by
#: kind of point and table. The only source of a per-point address (flag bits excepted: their
#: discrete inputs are at the block's base + the bit). Once given, an offset never changes.
OFFSETS: dict[str, dict[str, dict[str, int]]] = {
    "thermal": {
        "input_register": {
            "theta": 0, "capacity_used": 2, "time_to_trip": 4, "time_to_start": 6, "i_eq": 8,
            "i1": 10, "i2": 12, "i_max": 14, "flags": 16, "quality": 18, "trip_count": 19,
            "start_count": 21,
        },
        "coil": {"reset": 0, "acknowledge": 1},
        "holding_register": {
            "preset_theta": 0, "i_b": 2, "t_heat": 4, "t_cool": 6, "k2": 8, "kst": 10,
            "start_current": 12, "start_time_max": 14, "theta_trip": 16, "theta_al1": 18,
            "theta_al2": 20, "theta_inhibit": 22, "theta_initial": 24, "theta_reset": 26,
            "dropout_ratio": 28, "stale_limit": 30, "input_mode": 32, "latch": 33,
            # map version 2
            "input_loss_delay": 34, "input_loss_hold": 36, "input_loss": 38,
        },
    },
    "busbar": {
        "input_register": {
            "level_a": 0, "level_b": 2, "level_c": 4, "level_ambient": 6, "rate_a": 8,
            "rate_b": 10, "rate_c": 12, "rise_a": 14, "rise_b": 16, "rise_c": 18,
            "joint_index_a": 20, "joint_index_b": 22, "joint_index_c": 24, "max_rise": 26,
            "phase_delta": 28, "flags": 30, "fault_a": 32, "fault_b": 33, "fault_c": 34,
            "fault_ambient": 35, "imbalance_pair": 36, "hottest_phase": 37, "joint_phase": 38,
        },
        "coil": {},
        "holding_register": {
            "warning_delta": 0, "critical_delta": 2, "imbalance_max": 4, "rate_limit": 6,
            "hyst_delta": 8, "hyst_rate": 10, "pickup_warning": 12, "pickup_critical": 14,
            "pickup_imbalance": 16, "pickup_rate": 18, "pickup_joint": 20, "valid_min": 22,
            "valid_max": 24, "sentinel": 26, "stale_limit": 28, "kalman_r": 30,
            "kalman_q": 32, "erratic_gate": 34, "erratic_limit": 36, "joint_ratio": 38,
            "joint_min_current": 40, "joint_balance": 42, "joint_min_excess": 44,
        },
    },
}
#: The same for the quantities that did not fit their block: offset in the point's extension
#: area (EXTENSION + EXTENSION_BLOCK k). Empty in map version 1.
EXTENSION_OFFSETS: dict[str, dict[str, dict[str, int]]] = {
    "thermal": {"input_register": {}, "coil": {}, "holding_register": {}},
    "busbar": {"input_register": {}, "coil": {}, "holding_register": {
        # map version 2 (the block's 46..47 would hold one of these four, not all)
        "input_loss_delay": 0, "ambient_fallback": 2, "warning_abs": 4, "critical_abs": 6}},
}
#: the settings model of each kind of point (every field is a holding register)
SETTINGS_MODELS = {"thermal": ThermalSettings, "busbar": BusbarSettings}


class LayoutError(ValueError):
    """The offset tables do not place the map's per-point quantities (a generator error)."""


def place(kind: str, table: str, quantity: str, k: int) -> int:
    """The address of ``quantity`` of the point in block ``k``, from the offset tables."""
    block = OFFSETS[kind][table].get(quantity)
    extension = EXTENSION_OFFSETS[kind][table].get(quantity)
    if block is not None and extension is not None:
        raise LayoutError(f"{kind} {table} {quantity!r} has an offset in OFFSETS and in "
                          "EXTENSION_OFFSETS: give it one")
    if block is not None:
        return FIRST_POINT + BLOCK * k + block
    if extension is not None:
        return EXTENSION + EXTENSION_BLOCK * k + extension
    raise LayoutError(f"{kind} {table} {quantity!r} has no Modbus address: give it an offset "
                      f"in regmap.OFFSETS[{kind!r}][{table!r}] (a free one of its block) or, "
                      "when the block is full, in EXTENSION_OFFSETS, and raise MAP_VERSION")

# ---------------------------------------------------------------- globals

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
    parts = [int("".join(ch for ch in part if ch.isdigit()) or 0)
             for part in __version__.split(".")[:3]]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch


class RegisterMap:
    """Every entry of one configuration's map, with lookups by name and by address."""

    def __init__(self, config: RelayConfig, points: list[str] | None = None, *,
                 hashed: int | None = None) -> None:
        """The map of every point, or of ``points`` only (a unit id's group: laid out from the
        first block in the order given, each still reading its own rows of the core).
        ``hashed``: ``config_hash(config)`` when the caller has it already."""
        self.version = MAP_VERSION
        self.word_order = WORD_ORDER
        self.config_hash = config_hash(config) if hashed is None else hashed
        self.relay = config.name
        self.event_sources = event_sources(config)
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
        if len(config.points) > MAX_POINTS:
            raise ValueError(f"{len(config.points)} points: the register map holds at most "
                             f"{MAX_POINTS}")
        if len(config.buses) > MAX_BUSES:
            raise ValueError(f"{len(config.buses)} buses: the register map holds at most "
                             f"{MAX_BUSES}")
        for k, bus in enumerate(config.buses):
            entries += bus_entries(bus.name, k)
        counts, row_of = {"thermal": 0, "busbar": 0}, {}
        for point in config.points:  # each point's row in its kind's tables of the core
            row_of[point.name] = counts[point.kind]
            counts[point.kind] += 1
        by_name = {p.name: p for p in config.points}
        shown = [by_name[name] for name in points] if points is not None else config.points
        for k, point in enumerate(shown):  # point k: block, extension area and summary
            row = row_of[point.name]
            if point.kind == "thermal":
                entries += thermal_entries(point.name, k, row)
            else:
                entries += busbar_entries(point.name, k, row)
            entries += summary_entries(point.name, point.kind, SUMMARY + 4 * k, row)
        self.entries = entries
        self.points = len(shown)
        self.point_names = [p.name for p in shown]  #: in block order
        self._by_name = {(e.name, e.table): e for e in entries}
        self._check()

    def _check(self) -> None:
        """No two entries share an address in a table (a generator error, caught here)."""
        used: dict[tuple[str, int], str] = {}
        for e in self.entries:
            for a in range(e.address, e.address + e.width):
                key = (e.table, a)
                if key in used:
                    raise AssertionError(f"{e.name} overlaps {used[key]} at {e.table} {a}")
                used[key] = e.name

    def size(self, table: str) -> int:
        """One past the highest address used in ``table``."""
        return max((e.address + e.width for e in self.entries if e.table == table), default=0)

    def get(self, name: str, table: str | None = None) -> Entry:
        """The entry of ``name`` (in ``table`` when a name is in two tables)."""
        if table is not None:
            return self._by_name[(name, table)]
        found = [e for e in self.entries if e.name == name]
        if len(found) != 1:
            raise KeyError(f"{name!r}: {len(found)} entries (give the table)")
        return found[0]

    def in_table(self, table: str) -> list[Entry]:
        return sorted((e for e in self.entries if e.table == table), key=lambda e: e.address)

    # ------------------------------------------------------------ exports

    def header(self) -> dict:
        return {"relay": self.relay, "map_version": self.version,
                "firmware": ".".join(map(str, firmware_version())),
                "config_hash": f"0x{self.config_hash:08x}", "word_order": self.word_order,
                "float": "IEEE 754 binary32", "addressing": "0-based (as on the wire); "
                "reference = table digit + (address + 1), 6 digits",
                "block": BLOCK, "first_point": FIRST_POINT, "summary": SUMMARY}

    def to_json(self) -> str:
        document = self.header() | {"event_kinds": EVENT_KINDS,
                                    "event_sources": self.event_sources,
                                    "entries": [e.exported() for e in self.entries]}
        return json.dumps(document, indent=2, allow_nan=False) + "\n"

    def to_csv(self) -> str:
        out = io.StringIO()
        columns = list(Entry("", "coil", 0, "bool", "R", "").exported())
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        for e in self.entries:
            writer.writerow(e.exported())
        return out.getvalue()

    def to_markdown(self) -> str:
        h = self.header()
        lines = [f"# Register map of {h['relay']}", "",
                 f"Map version {h['map_version']}, softrelay {h['firmware']}, configuration "
                 f"hash {h['config_hash']}. Addresses are 0-based as sent on the wire (the "
                 "reference column is the 6-digit Modicon form). 32-bit values span two "
                 "registers, high word first; float32 is IEEE 754. Unmapped addresses answer "
                 "exception 02.", ""]
        for table in TABLES:
            entries = self.in_table(table)
            if not entries:
                continue
            lines += [f"## {table.replace('_', ' ')}s", "",
                      "| address | reference | name | type | unit | access | description |",
                      "|---:|---|---|---|---|---|---|"]
            lines += [f"| {e.address} | {e.reference} | {e.name} | {e.type} | {e.unit} | "
                      f"{e.access} | {e.description} |" for e in entries]
            lines.append("")
        return "\n".join(lines)


def thermal_entries(point: str, k: int, row: int) -> list[Entry]:
    """The entries of a thermal point in block ``k`` (``row``: its row in the core's tables)."""
    def at(table: str, quantity: str) -> int:
        return place("thermal", table, quantity, k)

    entries = [quantity_entry(point, q, at("input_register", q.name), "thermal_outputs", row)
               for q in QUANTITIES["thermal"]]
    entries += flag_entries(point, FIRST_POINT + BLOCK * k, at("input_register", "flags"),
                            THERMAL_FLAGS, "thermal_outputs", row)
    entries.append(Entry(f"{point}.quality", "input_register", at("input_register", "quality"),
                         "uint16", "R", "quality of the currents: " + ", ".join(
                             f"{int(q)} {QUALITY_TEXT[q]}" for q in Quality),
                         source=("thermal_inputs", "quality", row)))
    for quantity in ("trip_count", "start_count"):
        entries.append(Entry(f"{point}.{quantity}", "input_register",
                             at("input_register", quantity), "uint32", "R",
                             f"{quantity.split('_')[0]}s counted (kept in thermal memory)",
                             source=("thermal_state", quantity, row)))
    for quantity, text in (
            ("reset", "write 1: reset the latched trip (refused while theta >= theta_reset)"),
            ("acknowledge", "write 1: release latched coils whose flags have gone")):
        entries.append(Entry(f"{point}.{quantity}", "coil", at("coil", quantity), "bool", "W",
                             text, source=("command", quantity, point)))
    entries.append(Entry(f"{point}.preset_theta", "holding_register",
                         at("holding_register", "preset_theta"), "float32", "W",
                         "write theta (0..10 pu) to preset it at the next scan; reads NaN",
                         "pu", source=("command", "preset", point)))
    entries += settings_entries(point, "thermal", k, "thermal_settings", row)
    return entries


def quantity_entry(point: str, q: Quantity, address: int, table: str, row: int) -> Entry:
    """The input register(s) of one quantity a point shows (``core.quantities``)."""
    index = () if q.index is None else (q.index,)
    return Entry(f"{point}.{q.name}", "input_register", address, q.type, "R", q.description,
                 q.unit, q.scale, source=(table, q.field, row, *index))


def busbar_entries(point: str, k: int, row: int) -> list[Entry]:
    """The entries of a busbar point in block ``k`` (``row``: its row in the core's tables)."""
    def at(table: str, quantity: str) -> int:
        return place("busbar", table, quantity, k)

    def shown(quantities: list[Quantity]) -> list[Entry]:
        return [quantity_entry(point, q, at("input_register", q.name), "busbar_outputs", row)
                for q in quantities]

    entries = shown([q for q in QUANTITIES["busbar"] if q.type == "float32"])  # values, flags,
    # then codes
    entries += flag_entries(point, FIRST_POINT + BLOCK * k, at("input_register", "flags"),
                            BUSBAR_FLAGS, "busbar_outputs", row)
    entries += shown([q for q in QUANTITIES["busbar"] if q.type != "float32"])
    entries += settings_entries(point, "busbar", k, "busbar_settings", row)
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


def summary_entries(point: str, kind: str, address: int, row: int) -> list[Entry]:
    """The point's status in the summary (the same in input and holding registers, for
    masters that read only holding registers): one read of 100 registers covers 25 points."""
    table = "thermal_outputs" if kind == "thermal" else "busbar_outputs"
    field = "theta" if kind == "thermal" else "max_rise"
    text = ("theta, per-unit" if kind == "thermal" else "largest rise over ambient, C")
    unit = "pu" if kind == "thermal" else "C"
    entries = []
    for registers in ("input_register", "holding_register"):
        entries += [Entry(f"{point}.status", registers, address, "float32", "R",
                          f"summary: {text}", unit, source=(table, field, row)),
                    Entry(f"{point}.status_flags", registers, address + 2, "uint32", "R",
                          "summary: the flag word", source=(table, "flags", row))]
    return entries


def flag_entries(point: str, base: int, address: int, flags: list, table: str,
                 row: int) -> list[Entry]:
    """The packed flag word (input registers at ``address``) and each flag as a discrete
    input at ``base`` + its bit."""
    bits = ", ".join(f"{f.bit_length() - 1} {f.name.lower()}" for f in flags)
    entries = [Entry(f"{point}.flags", "input_register", address, "uint32", "R",
                     f"flag word ({type(flags[0]).__name__} bits: {bits})",
                     source=(table, "flags", row))]
    for flag in flags:
        bit = flag.bit_length() - 1
        entries.append(Entry(f"{point}.{flag.name.lower()}", "discrete_input", base + bit,
                             "bool", "R", FLAG_TEXT[type(flag)][flag],
                             source=(table, "flags", row, bit)))
    return entries


def settings_entries(point: str, kind: str, k: int, table: str, row: int) -> list[Entry]:
    """One holding register pair per field of the kind's settings model (uint16 for the
    enumerations), each at its offset in the tables (never in the model's field order: the
    entries come in address order); writable only while unlocked."""
    entries = []
    for name, info in SETTINGS_MODELS[kind].model_fields.items():
        kind_of = "uint16" if name in ENUM_SETTINGS else "float32"
        access = "R" if name in READ_ONLY_SETTINGS else "RW-unlocked"
        text = "setting: " + (info.description or name)
        if name in ENUM_SETTINGS:
            text += f" ({ENUM_SETTINGS[name]})"
        entries.append(Entry(f"{point}.{name}", "holding_register",
                             place(kind, "holding_register", name, k), kind_of, access, text,
                             source=(table, name, row)))
    return sorted(entries, key=lambda e: e.address)


def check_layout() -> None:
    """The offset tables place every per-point quantity of every kind inside its block or
    extension area, no two overlap, and no offset names a quantity the map does not have.
    Raises LayoutError naming each problem (checked at import, and by the tests with models
    that grew a field)."""
    problems = []
    builders = {"thermal": thermal_entries, "busbar": busbar_entries}
    for kind, build in builders.items():
        try:
            entries = build("p", 0, 0)
        except LayoutError as exc:
            problems.append(str(exc))
            continue
        used: dict[tuple[str, int], str] = {}
        for e in entries:
            quantity = e.name.partition(".")[2]
            if e.table == "discrete_input":
                room = (FIRST_POINT, FIRST_POINT + BLOCK)
            elif quantity in EXTENSION_OFFSETS[kind][e.table]:
                room = (EXTENSION, EXTENSION + EXTENSION_BLOCK)
            else:
                room = (FIRST_POINT, FIRST_POINT + BLOCK)
            if not (room[0] <= e.address and e.address + e.width <= room[1]):
                problems.append(f"{kind} {e.table} {quantity!r} at offset "
                                f"{e.address - room[0]} does not fit its {room[1] - room[0]} "
                                "addresses")
            for a in range(e.address, e.address + e.width):
                if (e.table, a) in used:
                    problems.append(f"{kind} {e.table} {quantity!r} overlaps "
                                    f"{used[(e.table, a)]!r}")
                used[(e.table, a)] = quantity
        names = {(e.table, e.name.partition(".")[2]) for e in entries}
        for offsets in (OFFSETS[kind], EXTENSION_OFFSETS[kind]):
            problems += [f"{kind} {table} {quantity!r} has an offset but no entry"
                         for table, placed in offsets.items() for quantity in placed
                         if (table, quantity) not in names]
    if problems:
        raise LayoutError("register map layout: " + "; ".join(problems))


check_layout()
