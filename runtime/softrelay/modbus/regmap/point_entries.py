"""A protected point's entries of the map: its block, its extension area and its line of the
status summary, each entry at the address the offset tables give it (``layout.place``).

Per point: measurements and derived values (float32) and the packed flag word (uint32) as input
registers, each flag bit again as a discrete input, commands as coils (write 1 to act; they read
0), preset theta and the settings as holding registers (settings writable only while unlocked).
32-bit values are two registers, high word first ("big" word order, ABCD); float32 is IEEE 754.
A float reads NaN when the quantity is unknown and +inf when it is unbounded (time to trip at a
current that never trips).

The entries come in the builders' order, their addresses never from it: ``check_layout``
(run at import) proves the offset tables place every quantity inside its room, none over
another, and name none the map does not have.
"""

from __future__ import annotations

from pydantic import BaseModel

from softrelay.core import BusbarFlag, BusbarSettings, Quality, ThermalFlag, ThermalSettings
from softrelay.core.quantities import QUANTITIES, Quantity
from softrelay.modbus.regmap.layout import (
    BLOCK,
    EXTENSION,
    EXTENSION_BLOCK,
    EXTENSION_OFFSETS,
    FIRST_POINT,
    OFFSETS,
    Entry,
    LayoutError,
    place,
)
from softrelay.modbus.regmap.texts import ENUM_SETTINGS, FLAG_TEXT, QUALITY_TEXT

#: the measurements and codes each kind of point shows are ``core.quantities``' (the map's
#: words, units and codings with them); their addresses are ``OFFSETS``', never that order
THERMAL_FLAGS = [f for f in ThermalFlag if f]
BUSBAR_FLAGS = [f for f in BusbarFlag if f]
#: settings a DCS may not change over Modbus (they follow the wiring), shown read-only
READ_ONLY_SETTINGS = {"input_mode"}
#: the settings model of each kind of point (every field is a holding register)
SETTINGS_MODELS: dict[str, type[BaseModel]] = {"thermal": ThermalSettings,
                                               "busbar": BusbarSettings}


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
