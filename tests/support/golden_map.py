"""The demo's register map as committed golden files, and the one way to change them.

The register map is the file a DCS engineer imports: a moved address, a changed type or scale
silently feeds the plant's control system wrong values. So the demo's map is committed under
``tests/golden/regmap_demo.v<MAP_VERSION>.json`` and ``tests/test_regmap_golden.py`` compares it
exactly: every entry (name, table, address, reference, width, type, scale, unit, access,
description), the header's fixed part (relay, map version, word order, float format, addressing,
block, first point, summary) and the event kind and source codes. Left out, because they vary
between machines and versions without the map changing: the firmware version and the
configuration hash (their *entries* stay: only their values vary).

To change the map deliberately:

1. change the map (``runtime/softrelay/modbus/regmap/``: an offset in ``layout.py``, the
   entry in ``point_entries.py`` or ``relay_entries.py``); if an entry was added, moved,
   retyped, rescaled, re-unitted or given another access, or an event code changed, bump
   ``MAP_VERSION`` in ``layout.py`` (a description fix alone keeps the version);
2. regenerate: ``PYTHONPATH=runtime python tests/golden_map.py`` (from the repository root).
   It writes the golden of the current ``MAP_VERSION`` and refuses, naming the entries, to
   rewrite a version's golden with anything but description changes;
3. commit the new golden with the map change. Goldens of earlier versions stay: the test checks
   that every entry they hold keeps its place and meaning in the current map (entries are only
   added). Deleting an old golden is breaking every DCS import of that version: say so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from softrelay.config import load
from softrelay.modbus.regmap import MAP_VERSION, RegisterMap

TESTS = Path(__file__).resolve().parents[1]  #: tests/
GOLDEN = TESTS / "golden"
DEMO_CONFIG = TESTS.parent / "config" / "demo.yaml"
#: header keys that vary between machines and versions without the map changing
VARYING = ("firmware", "config_hash")
#: what an entry means to a DCS beyond its text: a change needs a new map version
LAYOUT = ("name", "table", "address", "reference", "width", "type", "scale", "unit", "access")
REGENERATE = "PYTHONPATH=runtime python tests/golden_map.py"


def golden_path(version: int = MAP_VERSION) -> Path:
    return GOLDEN / f"regmap_demo.v{version}.json"


def document() -> dict:
    """The demo's exported map (``softrelay regmap config/demo.yaml --format json``), less the
    header values that vary between machines and versions."""
    exported = json.loads(RegisterMap(load(DEMO_CONFIG)).to_json())
    return {k: v for k, v in exported.items() if k not in VARYING}


def text(doc: dict) -> str:
    """The document as JSON, one entry a line, so a diff of the golden names what changed."""
    head = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items() if k != "entries"]
    entries = ",\n".join(f"  {json.dumps(e)}" for e in doc["entries"])
    return "{\n" + ",\n".join(head) + ',\n "entries": [\n' + entries + "\n ]\n}\n"


def layout_changes(old: dict, new: dict) -> list[str]:
    """What differs between two documents beyond descriptions: each needs a map version bump."""
    changes = [f"header {k}: {old.get(k)!r} -> {new.get(k)!r}"
               for k in sorted((set(old) | set(new)) - {"entries"}) if old.get(k) != new.get(k)]
    before = {(e["name"], e["table"]): e for e in old["entries"]}
    after = {(e["name"], e["table"]): e for e in new["entries"]}
    for key in before.keys() - after.keys():
        changes.append(f"removed {key[0]} ({key[1]})")
    for key in after.keys() - before.keys():
        changes.append(f"added {key[0]} ({key[1]})")
    for key in before.keys() & after.keys():
        for name in LAYOUT:
            if before[key][name] != after[key][name]:
                changes.append(f"{key[0]} ({key[1]}) {name}: {before[key][name]!r} -> "
                               f"{after[key][name]!r}")
    return sorted(changes)


def regenerate() -> int:
    new = document()
    path = golden_path()
    if path.exists():
        changes = layout_changes(json.loads(path.read_text()), new)
        if changes:
            print(f"refused: map version {MAP_VERSION}'s golden would change beyond its "
                  f"descriptions; bump MAP_VERSION in softrelay/modbus/regmap/layout.py first:\n  "
                  + "\n  ".join(changes), file=sys.stderr)
            return 1
    GOLDEN.mkdir(exist_ok=True)
    path.write_text(text(new))
    print(f"wrote {path} ({len(new['entries'])} entries, map version {MAP_VERSION})")
    return 0

