"""Addresses come from the committed offset tables, never from the order of a model's fields or
of a list: reordering a settings model moves nothing, a setting without an offset is an error
naming it, and settings that do not fit their block go to the point's extension area, so map
version 2 only adds entries."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
from pydantic import Field, create_model
from pymodbus.client import ModbusTcpClient

from softrelay.config import load
from softrelay.core import BusbarSettings, ThermalSettings
from softrelay.modbus import regmap
from softrelay.modbus.regmap import (
    BLOCK,
    EXTENSION,
    EXTENSION_BLOCK,
    FIRST_POINT,
    MAX_POINTS,
    LayoutError,
    RegisterMap,
    check_layout,
)

from support.configs import DEMO
from support.golden_map import VARYING, golden_path, layout_changes
from support.modbus import Running, f32, make_relay

CONFIG = load()

#: map version 2 (issue 13): the settings it added, and where they went. The thermal block had
#: room (holding registers 34..47 were free); the busbar block had 2 registers left, so its
#: four went to the extension area.
V2_THERMAL = {"input_loss_delay": 34, "input_loss_hold": 36, "input_loss": 38}
V2_BUSBAR_EXTENSION = {"input_loss_delay": 0, "ambient_fallback": 2, "warning_abs": 4,
                       "critical_abs": 6}
V2_FLAGS = {"thermal": ["measurement_lost"],
            "busbar": ["measurement_lost", "ambient_fallback", "temp_warning", "temp_critical"]}
V2_GLOBALS = [("supervision", "input_register"), ("points_lost", "input_register"),
              ("links_down", "input_register"), ("measurement_lost", "discrete_input"),
              ("link_down", "discrete_input"), ("self_test_failed", "discrete_input")]


def layout(m: RegisterMap) -> dict[tuple[str, str], tuple[int, str]]:
    return {(e.name, e.table): (e.address, e.type) for e in m.entries}


def reordered(model: type) -> type:
    """``model`` with its fields in reverse order (same names, types and defaults)."""
    fields = {name: (info.annotation, info) for name, info in
              reversed(list(model.model_fields.items()))}
    return create_model(f"Reversed{model.__name__}", __config__=model.model_config, **fields)


def test_reordering_a_settings_model_moves_no_address(monkeypatch):
    original = RegisterMap(CONFIG)
    before = layout(original)
    for kind, model in (("thermal", ThermalSettings), ("busbar", BusbarSettings)):
        backwards = reordered(model)
        assert list(backwards.model_fields) == list(reversed(model.model_fields))
        monkeypatch.setitem(regmap.SETTINGS_MODELS, kind, backwards)
    after = RegisterMap(CONFIG)
    assert layout(after) == before
    assert after.to_json() == original.to_json()  # the export too, in the same order


def test_a_setting_without_an_offset_is_an_error_naming_it(monkeypatch):
    grown = create_model("Grown", __base__=ThermalSettings,
                         future_setting=(float, Field(2.0)))
    monkeypatch.setitem(regmap.SETTINGS_MODELS, "thermal", grown)
    with pytest.raises(LayoutError, match=r"thermal holding_register 'future_setting' has "
                                          r"no Modbus address: give it an offset"):
        check_layout()
    with pytest.raises(LayoutError, match="future_setting"):
        RegisterMap(CONFIG)


def test_an_offset_that_overlaps_overflows_or_names_nothing_is_an_error(monkeypatch):
    holding = regmap.OFFSETS["busbar"]["holding_register"]
    monkeypatch.setitem(regmap.OFFSETS["busbar"], "holding_register",
                        holding | {"joint_min_excess": 46, "kalman_q": 30})
    with pytest.raises(LayoutError) as raised:
        check_layout()
    assert "'kalman_q' overlaps 'kalman_r'" in str(raised.value)
    monkeypatch.setitem(regmap.OFFSETS["busbar"], "holding_register",
                        holding | {"joint_min_excess": 47, "retired": 46})
    with pytest.raises(LayoutError) as raised:
        check_layout()
    assert "'joint_min_excess' at offset 47 does not fit its 48 addresses" in str(raised.value)
    assert "'retired' has an offset but no entry" in str(raised.value)


def test_the_layout_imports_nothing_of_softrelay():
    """Every address comes from ``modbus/regmap/layout.py``'s constants and offset tables,
    which import nothing of softrelay: no model, list or quantity table can move one."""
    path = Path(regmap.__file__).parent / "layout.py"
    tree = ast.parse(path.read_text())
    named = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    named += [n.module or "." for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
              and n.module != "__future__"]
    assert named and not [m for m in named if m.startswith(("softrelay", "."))], named
    assert regmap.OFFSETS is regmap.layout.OFFSETS  # what the tests patch is what places


def test_the_extension_areas_fit_every_point_after_the_last_block():
    assert EXTENSION == FIRST_POINT + BLOCK * MAX_POINTS == 54700
    assert EXTENSION + EXTENSION_BLOCK * MAX_POINTS == 65200 <= 65536


def test_map_version_2_only_adds_entries():
    """Against version 1's golden: every difference is an added entry (or the version itself,
    or event codes appended after version 1's), and the added ones are exactly version 2's."""
    v2 = json.loads(golden_path(2).read_text())  # version 2 as committed (3 adds to it)
    v1 = json.loads(golden_path(1).read_text())
    added = ([f"added {p}.{q} (holding_register)" for p in ("motor1", "motor2")
              for q in V2_THERMAL]
             + [f"added bus1.{q} (holding_register)" for q in V2_BUSBAR_EXTENSION]
             + [f"added {p.name}.{f} (discrete_input)" for p in CONFIG.points
                for f in V2_FLAGS[p.kind]]
             + [f"added relay.{q} ({table})" for q, table in V2_GLOBALS]
             + [f"added bus.{b.name}.{q} ({table})" for b in CONFIG.buses
                for q, table in (("link_up", "input_register"),
                                 ("link_downs", "input_register"),
                                 ("link_down", "discrete_input"))])
    changes = layout_changes(v1, v2)
    assert "header map_version: 1 -> 2" in changes
    codes = [c for c in changes if c.startswith("header event_sources")]
    assert len(codes) == 1 and v2["event_sources"][:len(v1["event_sources"])] \
        == v1["event_sources"], "an event source code of version 1 changed its meaning"
    assert sorted(set(changes) - {"header map_version: 1 -> 2", *codes}) == sorted(added)
    m = RegisterMap(CONFIG)
    assert m.get("motor2.input_loss_delay").address == FIRST_POINT + BLOCK + 34
    assert m.get("motor1.input_loss").type == "uint16"
    assert "0 freeze, 1 hold" in m.get("motor1.input_loss").description
    for quantity, offset in V2_BUSBAR_EXTENSION.items():  # bus1 is the third point
        assert m.get(f"bus1.{quantity}", "holding_register").address \
            == EXTENSION + EXTENSION_BLOCK * 2 + offset


def test_the_slave_serves_a_setting_in_the_extension_area(tmp_path, monkeypatch):
    """Over real Modbus/TCP: a busbar setting placed in the extension area (here an existing one
    moved there too, for the test only) reads back at 54 700 + 10 k + its offset, and its old place
    in the block is unmapped (exception 02)."""
    holding = dict(regmap.OFFSETS["busbar"]["holding_register"])
    del holding["joint_min_excess"]
    monkeypatch.setitem(regmap.OFFSETS["busbar"], "holding_register", holding)
    monkeypatch.setitem(regmap.EXTENSION_OFFSETS["busbar"], "holding_register",
                        regmap.EXTENSION_OFFSETS["busbar"]["holding_register"]
                        | {"joint_min_excess": 8})
    # the map is patched in this process only: a telemetry process would compute the real
    # map's image and is refused by the snapshot's layout check, so the metrics are left out
    start = DEMO.index("\nmetrics:")
    metrics = DEMO[start:DEMO.index("\n\n", start)].replace("port: 9650", "port: 0")
    running = Running(make_relay(tmp_path, extra=(metrics, "")))
    try:
        address = running.relay.regmap.get("bus1.joint_min_excess").address
        assert address == EXTENSION + EXTENSION_BLOCK * 2 + 8
        expected = running.relay.config.points[2].settings.joint_min_excess
        with ModbusTcpClient("127.0.0.1", port=running.port) as client:
            words = client.read_holding_registers(address, count=2, device_id=1)
            assert not words.isError() and f32(words.registers) == expected
            old = client.read_holding_registers(FIRST_POINT + 2 * BLOCK + 44, count=2,
                                                device_id=1)
            assert old.isError() and old.exception_code == 2
        assert not math.isnan(expected)
    finally:
        running.close()


def test_map_version_3_only_adds_the_access_figures():
    """Against version 2's golden: the access levels' figures are the only entries added."""
    v3 = {k: v for k, v in json.loads(RegisterMap(CONFIG).to_json()).items()
          if k not in VARYING}
    v2 = json.loads(golden_path(2).read_text())
    changes = layout_changes(v2, v3)
    added = [f"added relay.{q} (input_register)" for q in
             ("wrong_codes", "lockouts", "refused_writes", "sessions", "local")]
    added.append("added relay.local (discrete_input)")
    assert sorted(set(changes) - {"header map_version: 2 -> 3"}) == sorted(added), changes
