"""The register map's exports (``softrelay regmap --format json|csv|md``): what an integrator
imports into the DCS. Every entry states its name, table, 0-based address, 6-digit Modicon
reference, width, type, scale, unit, access and description; the header the map version, the
firmware, the configuration hash and the word order of 32-bit values.

The JSON export is what an integrator imports; its schema is documented in the README, and the
demo's is golden (``tests/golden/regmap_demo.v<version>.json``, compared exactly). The exports
never change what the map holds: they only write it.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from softrelay.modbus.event_window import KINDS as EVENT_KINDS
from softrelay.modbus.regmap.layout import BLOCK, FIRST_POINT, SUMMARY, TABLES, Entry
from softrelay.modbus.regmap.relay_entries import firmware_version

if TYPE_CHECKING:
    from softrelay.modbus.regmap.map import RegisterMap


def header(regmap: RegisterMap) -> dict:
    """The export's header: relay, versions, hash, word order, addressing."""
    return {"relay": regmap.relay, "map_version": regmap.version,
            "firmware": ".".join(map(str, firmware_version())),
            "config_hash": f"0x{regmap.config_hash:08x}", "word_order": regmap.word_order,
            "float": "IEEE 754 binary32", "addressing": "0-based (as on the wire); "
            "reference = table digit + (address + 1), 6 digits",
            "block": BLOCK, "first_point": FIRST_POINT, "summary": SUMMARY}


def to_json(regmap: RegisterMap) -> str:
    """The map as a JSON document: the header, the event kinds and sources, the entries."""
    document = header(regmap) | {"event_kinds": EVENT_KINDS,
                                "event_sources": regmap.event_sources,
                                "entries": [e.exported() for e in regmap.entries]}
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def to_csv(regmap: RegisterMap) -> str:
    """The entries, one CSV row each, under a header row of the JSON's entry keys."""
    out = io.StringIO()
    columns = list(Entry("", "coil", 0, "bool", "R", "").exported())
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for e in regmap.entries:
        writer.writerow(e.exported())
    return out.getvalue()


def to_markdown(regmap: RegisterMap) -> str:
    """The map as a document: a paragraph of conventions, one table per Modbus table."""
    h = header(regmap)
    lines = [f"# Register map of {h['relay']}", "",
             f"Map version {h['map_version']}, softrelay {h['firmware']}, configuration "
             f"hash {h['config_hash']}. Addresses are 0-based as sent on the wire (the "
             "reference column is the 6-digit Modicon form). 32-bit values span two "
             "registers, high word first; float32 is IEEE 754. Unmapped addresses answer "
             "exception 02.", ""]
    for table in TABLES:
        entries = regmap.in_table(table)
        if not entries:
            continue
        lines += [f"## {table.replace('_', ' ')}s", "",
                  "| address | reference | name | type | unit | access | description |",
                  "|---:|---|---|---|---|---|---|"]
        lines += [f"| {e.address} | {e.reference} | {e.name} | {e.type} | {e.unit} | "
                  f"{e.access} | {e.description} |" for e in entries]
        lines.append("")
    return "\n".join(lines)

