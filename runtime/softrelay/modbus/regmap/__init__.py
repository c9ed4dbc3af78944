"""The Modbus register map the DCS polls: generated from the configuration, versioned, exported.

An address, once given, keeps its meaning in every later map version; the demo's map is golden.
One job a module:

- ``layout``: the map version, the tables, the blocks and areas, the committed offset tables
  and ``place()``, the ``Entry`` every address is given as: where everything sits;
- ``texts``: the words for every flag bit, input quality code and enumerated setting;
- ``relay_entries``: the relay's own entries (identity, counters, health, access, commands,
  the event window) and each field bus's link;
- ``point_entries``: a protected point's entries (block, extension area, summary line), and
  ``check_layout()``, run at import: every quantity has its place;
- ``map``: ``RegisterMap``, one configuration's map, with lookups;
- ``export``: the JSON, CSV and Markdown exports (``softrelay regmap``).

This package names what the rest of softrelay imports from it (``from softrelay.modbus.regmap
import RegisterMap``), so callers need not know which module holds what. Importing it checks
the texts and the layout: a flag without words, or a quantity without an offset, is an error
at import naming it.
"""

from __future__ import annotations

from softrelay.config.identity import config_hash  # the hash input registers 4..5 show
from softrelay.modbus.regmap.layout import (
    BLOCK,
    BUS_BLOCK,
    BUS_FIRST,
    EXTENSION,
    EXTENSION_BLOCK,
    EXTENSION_OFFSETS,
    FIRST_POINT,
    MAP_VERSION,
    MAX_BUSES,
    MAX_POINTS,
    OFFSETS,
    REFERENCE_DIGIT,
    SUMMARY,
    TABLES,
    WIDTH,
    WORD_ORDER,
    Entry,
    LayoutError,
    place,
)
from softrelay.modbus.regmap.map import RegisterMap
from softrelay.modbus.regmap.point_entries import (
    BUSBAR_FLAGS,
    READ_ONLY_SETTINGS,
    SETTINGS_MODELS,
    THERMAL_FLAGS,
    busbar_entries,
    check_layout,
    flag_entries,
    quantity_entry,
    settings_entries,
    summary_entries,
    thermal_entries,
)
from softrelay.modbus.regmap.relay_entries import (
    EVENT_FIELDS,
    GLOBAL_READINGS,
    GLOBAL_WRITES,
    bus_entries,
    firmware_version,
    relay_entries,
)
from softrelay.modbus.regmap.texts import ENUM_SETTINGS, FLAG_TEXT, QUALITY_TEXT, check_texts

__all__ = [
    "BLOCK", "BUSBAR_FLAGS", "BUS_BLOCK", "BUS_FIRST", "ENUM_SETTINGS", "EVENT_FIELDS",
    "EXTENSION", "EXTENSION_BLOCK", "EXTENSION_OFFSETS", "FIRST_POINT", "FLAG_TEXT",
    "GLOBAL_READINGS", "GLOBAL_WRITES", "MAP_VERSION", "MAX_BUSES", "MAX_POINTS", "OFFSETS",
    "QUALITY_TEXT", "READ_ONLY_SETTINGS", "REFERENCE_DIGIT", "SETTINGS_MODELS", "SUMMARY",
    "TABLES", "THERMAL_FLAGS", "WIDTH", "WORD_ORDER", "Entry", "LayoutError", "RegisterMap",
    "bus_entries", "busbar_entries", "check_layout", "check_texts", "config_hash",
    "firmware_version", "flag_entries", "place", "quantity_entry", "relay_entries",
    "settings_entries", "summary_entries", "thermal_entries",
]
