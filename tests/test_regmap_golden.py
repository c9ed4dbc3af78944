"""The demo's register map is its committed golden file, exactly: the DCS engineer's import
never changes by accident.

Changing the map on purpose: bump ``MAP_VERSION`` in ``softrelay/modbus/regmap/layout.py`` when an
entry is added, moved, retyped, rescaled, re-unitted or given another access (a description fix
keeps the version), then regenerate with ``PYTHONPATH=runtime python tests/golden_map.py`` and
commit the golden with the change (tests/golden_map.py says the whole procedure).
"""

from __future__ import annotations

import json

import pytest

from softrelay.modbus.regmap import MAP_VERSION

from support.golden_map import GOLDEN, LAYOUT, REGENERATE, document, golden_path, layout_changes

HOW = (f"If the change is deliberate: bump MAP_VERSION in softrelay/modbus/regmap/layout.py unless "
       f"only descriptions changed, then regenerate with `{REGENERATE}` and commit the golden.")


def differences(old: dict, new: dict) -> list[str]:
    """Every difference, layout first, then descriptions, one line each."""
    changes = layout_changes(old, new)
    before = {(e["name"], e["table"]): e["description"] for e in old["entries"]}
    for e in new["entries"]:
        key = (e["name"], e["table"])
        if key in before and before[key] != e["description"]:
            changes.append(f"{e['name']} ({e['table']}) description: {before[key]!r} -> "
                           f"{e['description']!r}")
    return changes


def test_the_demo_map_is_its_golden_file_exactly():
    path = golden_path()
    assert path.exists(), f"no golden for map version {MAP_VERSION} ({path}). {HOW}"
    golden, current = json.loads(path.read_text()), document()
    if current != golden:
        listed = differences(golden, current) or ["entry order"]
        pytest.fail(f"the demo's register map differs from {path.name}:\n  "
                    + "\n  ".join(listed[:40]) + f"\n{HOW}", pytrace=False)


def test_every_entry_of_an_earlier_map_version_keeps_its_place_and_meaning():
    current = {(e["name"], e["table"]): e for e in document()["entries"]}
    for path in sorted(GOLDEN.glob("regmap_demo.v*.json")):
        old = json.loads(path.read_text())
        assert old["map_version"] <= MAP_VERSION, f"{path.name} is newer than MAP_VERSION"
        for e in old["entries"]:
            now = current.get((e["name"], e["table"]))
            assert now is not None, f"{e['name']} ({e['table']}) of {path.name} is gone"
            changed = {k: (e[k], now[k]) for k in LAYOUT if e[k] != now[k]}
            assert not changed, (f"{e['name']} ({e['table']}) of {path.name} changed "
                                 f"{changed}: an address, once given, keeps its meaning")


def test_a_layout_change_needs_a_new_map_version_but_a_description_fix_does_not():
    golden = json.loads(golden_path().read_text())
    moved = json.loads(json.dumps(golden))
    moved["entries"][-1]["address"] += 2
    assert layout_changes(golden, moved) == [
        f"{moved['entries'][-1]['name']} ({moved['entries'][-1]['table']}) address: "
        f"{golden['entries'][-1]['address']} -> {moved['entries'][-1]['address']}"]
    reworded = json.loads(json.dumps(golden))
    reworded["entries"][0]["description"] = "another text"
    assert layout_changes(golden, reworded) == []
    assert differences(golden, reworded) == [
        "relay.map_version (input_register) description: 'version of this register map' -> "
        "'another text'"]
