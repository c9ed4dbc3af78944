"""What a point shows is listed once (``core/quantities.py``): a quantity added to a kind's
table appears in the register map, the metrics and the MQTT document, and the map refuses
one it has no address for; the compact views name only quantities the table has."""

from __future__ import annotations

import numpy as np
import pytest

from softrelay.config import load
from softrelay.core import quantities
from softrelay.core.layout import BUSBAR_OUTPUTS, THERMAL_OUTPUTS
from softrelay.core.quantities import QUANTITIES, THERMAL_CURRENT, Family, Quantity
from softrelay.image.signals import input_layout
from softrelay.image.snapshot import STATS
from softrelay.modbus import regmap
from softrelay.modbus.regmap import LayoutError, RegisterMap
from softrelay.telemetry.metrics import RelayCollector
from softrelay.telemetry.reading import Reading, document

CONFIG = load()
#: a sequence current the core does not give: shown from i2's field for the test
I0 = Quantity("i0", "i2", "A", "zero-sequence current", family=THERMAL_CURRENT, label="i0")


def reading(config=CONFIG) -> Reading:
    thermal = np.zeros(len(config.thermal_points), THERMAL_OUTPUTS)
    thermal["i2"] = [7.5, 8.5]
    layout = input_layout(config)
    return Reading(0.0, np.zeros(1, STATS)[0], thermal,
                   np.zeros(len(config.busbar_points), BUSBAR_OUTPUTS),
                   np.zeros(len(config.outputs), "u1"),
                   np.zeros(layout["signals"][1], layout["signals"][0]),
                   np.zeros(layout["buses"][1], layout["buses"][0]), 0.0)


def samples(config=CONFIG) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in RelayCollector(config, reading).collect() for s in f.samples}


def test_every_channel_shows_the_tables_quantities():
    """Today's table on the map, the metrics and the document (where it has a family)."""
    names = {e.name for e in RegisterMap(CONFIG).entries}
    got = samples()
    doc = document(CONFIG, reading())["points"]
    for kind, point in (("thermal", "motor1"), ("busbar", "bus1")):
        for q in QUANTITIES[kind]:
            assert f"{point}.{q.name}" in names
            place = doc[point]
            for key in q.path[:-1]:
                place = place[key]
            assert q.bits is not None or q.path[-1] in place, q.name  # fault words: when set
            if q.family is not None:
                labels = {"point": point} | ({q.family.label: q.label} if q.family.label
                                             else {})
                key = (f"softrelay_{q.family.name}" + (f"_{q.family.unit}" if q.family.unit
                                                       else ""),
                       tuple(sorted(labels.items())))
                assert key in got, key
    assert doc["motor1"]["i1"] == 0.0  # the document had no i1 (the map and metrics had)


def test_a_quantity_added_to_the_table_appears_on_every_channel(monkeypatch):
    monkeypatch.setitem(QUANTITIES, "thermal", (*QUANTITIES["thermal"], I0))
    # without an address the map refuses it, naming it and the remedy
    with pytest.raises(LayoutError, match=r"thermal input_register 'i0' has no Modbus "
                       r"address.*OFFSETS"):
        RegisterMap(CONFIG)
    with pytest.raises(LayoutError, match="'i0'"):
        regmap.check_layout()
    monkeypatch.setitem(regmap.EXTENSION_OFFSETS["thermal"], "input_register", {"i0": 0})
    regmap.check_layout()
    entry = RegisterMap(CONFIG).get("motor1.i0")
    assert (entry.address, entry.type, entry.unit, entry.description) == (
        regmap.EXTENSION, "float32", "A", "zero-sequence current")
    assert samples()[("softrelay_thermal_current_amperes",
                      (("point", "motor2"), ("quantity", "i0")))] == 8.5
    assert document(CONFIG, reading())["points"]["motor1"]["i0"] == 7.5


def test_a_new_family_is_a_new_metric(monkeypatch):
    family = Family("thermal_i0", "zero-sequence current", "amperes")
    monkeypatch.setitem(QUANTITIES, "thermal", (*QUANTITIES["thermal"], Quantity(
        "i0", "i2", "A", "zero-sequence current", family=family)))
    monkeypatch.setitem(quantities.FAMILIES, "thermal", (*quantities.FAMILIES["thermal"],
                                                         family))
    assert samples()[("softrelay_thermal_i0_amperes", (("point", "motor1"),))] == 7.5


def test_a_quantity_without_a_family_must_say_why():
    with pytest.raises(ValueError, match="'i0' has neither a metric family nor a reason"):
        quantities._check("thermal", (Quantity("i0", "i2", "A", "zero-sequence"),))
    with pytest.raises(ValueError, match="'theta' is listed twice"):
        quantities._check("thermal", (*QUANTITIES["thermal"], QUANTITIES["thermal"][0]))


def test_the_compact_views_name_only_quantities_the_table_has(monkeypatch):
    from softrelay import screen

    screen.check_lines()
    monkeypatch.setitem(screen.LINES, "thermal", "theta {theta:6.3f}  I_0 {i0:5.1f}")
    with pytest.raises(KeyError, match="thermal points show no 'i0'"):
        screen.check_lines()


def test_the_remote_status_columns_name_only_quantities_the_table_has():
    from softrelay.modbus import status_client

    status_client.check_columns()
    with pytest.raises(KeyError, match="busbar points show no 'rise_n'"):
        status_client.Shown("busbar", "rise_n", lambda v, p: f"{v:.1f}")
