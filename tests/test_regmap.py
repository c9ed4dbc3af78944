"""The Modbus register map: stable addresses generated from the configuration, its exports, and
the register image that codes one scan into words and bits exactly as the map says."""

from __future__ import annotations

import csv
import enum
import io
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softrelay.config import load, parse
from softrelay.core import BusbarFlag, ProtectionCore, Quality, ThermalFlag
from softrelay.modbus.event_window import EVENT_WINDOW, WINDOW
from softrelay.modbus.register_image import (
    RELAY,
    RegisterImage,
    compiled_encoder,
    empty_image,
)
from softrelay.modbus.regmap import (
    BLOCK,
    BUS_BLOCK,
    BUS_FIRST,
    EXTENSION,
    EXTENSION_BLOCK,
    FIRST_POINT,
    FLAG_TEXT,
    MAP_VERSION,
    SUMMARY,
    TABLES,
    RegisterMap,
    check_texts,
    config_hash,
)
from softrelay.supervision.links import LINK

from support.configs import DEMO
from support.core import set_currents, set_temperatures
from support.relays import running

CONFIG = load()
DEMO_FILE = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"
MAP = RegisterMap(CONFIG)


def test_each_point_has_its_block_at_a_fixed_place_in_every_table():
    assert [p.name for p in CONFIG.points] == ["motor1", "motor2", "bus1"]
    assert MAP.get("motor1.theta").address == FIRST_POINT
    assert MAP.get("motor2.theta").address == FIRST_POINT + BLOCK
    assert MAP.get("bus1.level_a").address == FIRST_POINT + 2 * BLOCK
    assert MAP.get("motor1.trip", "discrete_input").address == FIRST_POINT  # bit 0
    assert MAP.get("bus1.critical", "discrete_input").address == FIRST_POINT + 2 * BLOCK + 1
    assert MAP.get("motor2.reset").address == FIRST_POINT + BLOCK
    assert MAP.get("motor1.preset_theta").address == FIRST_POINT
    assert MAP.get("relay.scans").address == 6 and MAP.get("relay.scans").type == "uint32"
    assert MAP.get("motor1.theta").reference == "304301"
    assert MAP.get("motor1.i_b").reference == "404303"
    assert MAP.get("bus1.status", "holding_register").address == SUMMARY + 8


def test_no_two_entries_share_an_address_and_every_block_stays_in_its_place():
    for table in TABLES:
        used = set()
        for e in MAP.in_table(table):
            span = set(range(e.address, e.address + e.width))
            assert not used & span, e.name
            used |= span
            if e.name.startswith("relay."):
                assert e.address + e.width <= SUMMARY
                continue
            if e.name.startswith("bus."):  # a field bus's link: its own area, bus k
                k = [b.name for b in CONFIG.buses].index(e.name.split(".")[1])
                first = BUS_FIRST + (k if table == "discrete_input" else BUS_BLOCK * k)
                assert first <= e.address and e.address + e.width <= first + BUS_BLOCK, e.name
                continue
            k = [p.name for p in CONFIG.points].index(e.name.split(".")[0])
            if e.name.endswith((".status", ".status_flags")):
                assert SUMMARY + 4 * k <= e.address < SUMMARY + 4 * (k + 1), e.name
            elif e.address >= EXTENSION:  # what did not fit the block: the extension area
                assert EXTENSION + k * EXTENSION_BLOCK <= e.address
                assert e.address + e.width <= EXTENSION + (k + 1) * EXTENSION_BLOCK, e.name
            else:
                assert FIRST_POINT + k * BLOCK <= e.address
                assert e.address + e.width <= FIRST_POINT + (k + 1) * BLOCK, e.name


def test_a_point_added_at_the_end_moves_nothing():
    extra = DEMO.replace("outputs:\n", """  - name: motor3
    kind: thermal
    currents: [m1.ia, m1.ib, m1.ic]
    settings: {i_b: 10.0, t_heat: 60.0, t_cool: 180.0, input_mode: magnitudes}

outputs:
""", 1)
    bigger = RegisterMap(parse(extra))
    before = {(e.name, e.table): (e.address, e.type) for e in MAP.entries
              if e.name != "relay.points"}
    after = {(e.name, e.table): (e.address, e.type) for e in bigger.entries}
    assert all(after[key] == value for key, value in before.items())
    assert bigger.get("motor3.theta").address == FIRST_POINT + 3 * BLOCK
    assert bigger.config_hash != MAP.config_hash


def test_the_hash_follows_the_settings():
    changed = parse(DEMO.replace("k2: 3.0", "k2: 4.0", 1))
    assert config_hash(changed) != config_hash(CONFIG)
    assert config_hash(parse(DEMO)) == config_hash(CONFIG)


def test_the_exports_carry_every_entry_and_the_header():
    document = json.loads(MAP.to_json())
    assert document["map_version"] == MAP_VERSION and document["word_order"] == "big"
    assert document["config_hash"] == f"0x{MAP.config_hash:08x}"
    assert len(document["entries"]) == len(MAP.entries)
    keys = {"name", "table", "address", "reference", "width", "type", "scale", "unit",
            "access", "description"}
    assert all(set(e) == keys for e in document["entries"])
    rows = list(csv.DictReader(io.StringIO(MAP.to_csv())))
    assert len(rows) == len(MAP.entries) and rows[0]["name"] == "relay.map_version"
    markdown = MAP.to_markdown()
    assert "| 4300 | 304301 | motor1.theta | float32 | pu | R |" in markdown
    assert "## holding registers" in markdown


@pytest.mark.e2e
def test_the_regmap_command_prints_the_map(tmp_path):
    run = subprocess.run([sys.executable, "-m", "softrelay", "regmap", "--format", "json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(run.stdout)["relay"] == "demo"
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.replace("k2: 3.0", "k2: -1.0"))
    run = subprocess.run([sys.executable, "-m", "softrelay", "regmap", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "k2" in run.stderr


@pytest.mark.e2e
def test_each_flag_is_described_in_its_own_classes_words():
    """ThermalFlag.TRIP and BusbarFlag.WARNING are both bit 0: a motor's trip must not read
    "largest rise over ambient" in the DCS's import."""
    run = subprocess.run([sys.executable, "-m", "softrelay", "regmap", str(DEMO_FILE),
                          "--format", "csv"], capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(run.stdout))}
    assert rows["motor1.trip"]["description"].startswith("trip (latched until reset")
    assert rows["motor1.alarm1"]["description"] == "theta >= theta_al1"
    assert rows["bus1.warning"]["description"].startswith("largest rise over ambient")
    motor = {rows[f"motor1.{f.name.lower()}"]["description"] for f in ThermalFlag if f}
    bus = {rows[f"bus1.{f.name.lower()}"]["description"] for f in BusbarFlag if f}
    assert len(motor) == len([f for f in ThermalFlag if f]) and not motor & bus
    assert not any("ambient" in text or "rise" in text for text in motor)


def test_a_flag_or_quality_without_its_words_is_an_error_naming_it():
    check_texts()  # the shipped tables are complete
    thermal = dict(FLAG_TEXT[ThermalFlag])
    del thermal[ThermalFlag.ALARM2]
    with pytest.raises(ValueError, match=r"ThermalFlag\.ALARM2 has no description"):
        check_texts({ThermalFlag: thermal, BusbarFlag: FLAG_TEXT[BusbarFlag]})
    mixed = dict(FLAG_TEXT[ThermalFlag])
    del mixed[ThermalFlag.TRIP]
    mixed[BusbarFlag.WARNING] = "bit 0 in the busbar's words"
    with pytest.raises(ValueError, match=r"ThermalFlag\.TRIP has no.*holds BusbarFlag\.WARNING"):
        check_texts({ThermalFlag: mixed, BusbarFlag: FLAG_TEXT[BusbarFlag]})

    class Grown(enum.IntFlag):  # a class that gained a bit nobody described
        NONE = 0
        TRIP = 1
        MEASUREMENT_LOST = 1 << 10

    with pytest.raises(ValueError, match=r"Grown\.MEASUREMENT_LOST has no description"):
        check_texts({Grown: {Grown.TRIP: "trip"}})

    class Codes(enum.IntEnum):
        GOOD = 0
        SENTINEL = 4

    with pytest.raises(ValueError, match=r"Codes\.SENTINEL has no description in QUALITY"):
        check_texts({}, {Codes.GOOD: "good"}, Codes)


# ---------------------------------------------------------------- the register image


def decode(words: np.ndarray, entry) -> float:
    """An entry's value as a DCS decodes it from the words (big-endian word order)."""
    w = [int(x) for x in words[entry.address:entry.address + entry.width]]
    if entry.type == "float32":
        return struct.unpack(">f", struct.pack(">HH", *w))[0]
    if entry.type == "uint32":
        return w[0] << 16 | w[1]
    return w[0]


@pytest.fixture(scope="module")
def scanned():
    """A core of the demo's points after some scans, and its image."""
    thermal = CONFIG.thermal_points
    busbar = CONFIG.busbar_points
    core = ProtectionCore([p.settings for p in thermal], [p.settings for p in busbar],
                          window_length=64, samples_per_cycle=32)
    t = 0.0
    for _ in range(200):
        t += 0.5
        set_currents(core, 150.0, now=t, point=0)
        core.thermal_inputs["quality"][1] = Quality.STALE  # motor2: no window yet
        set_temperatures(core, [70.0, 52.0, 51.0, 25.0], now=t)
        core.scan(t, 0.5)
    relay = np.zeros(1, RELAY)
    for name, value in (("map_version", 1), ("scans", 2**32 + 7), ("heartbeat", 7),
                        ("healthy", 1), ("period", 10.0), ("points", 3)):
        relay[name] = value
    image = empty_image(MAP)
    RegisterImage(MAP).fill(sources(core, relay), image)
    return core, image


def sources(core: ProtectionCore, relay: np.ndarray) -> dict[str, np.ndarray]:
    return {"thermal_outputs": core.thermal_outputs, "thermal_inputs": core.thermal_inputs,
            "thermal_state": core.thermal_state, "thermal_settings": core.thermal_settings,
            "busbar_outputs": core.busbar_outputs, "busbar_settings": core.busbar_settings,
            "relay": relay, "events": np.zeros(WINDOW, EVENT_WINDOW),
            "links": np.zeros(len(CONFIG.buses), LINK)}


def test_measurements_read_back_as_the_core_computed_them(scanned):
    core, image = scanned
    ir = image["input_register"]
    out = core.thermal_outputs[0]
    for quantity in ("theta", "capacity_used", "time_to_trip", "i_eq", "i2", "i_max"):
        got = decode(ir, MAP.get(f"motor1.{quantity}"))
        assert got == pytest.approx(float(np.float32(out[quantity])), rel=1e-7), quantity
    assert decode(ir, MAP.get("motor1.flags", "input_register")) == int(out["flags"])
    assert out["flags"] & ThermalFlag.ALARM1  # the scenario reached an alarm
    assert decode(ir, MAP.get("motor1.quality")) == Quality.GOOD
    assert decode(ir, MAP.get("motor2.quality")) == Quality.STALE
    assert math.isnan(decode(ir, MAP.get("motor2.time_to_trip")))  # unknown: input fault
    bus = core.busbar_outputs[0]
    assert decode(ir, MAP.get("bus1.max_rise")) == pytest.approx(float(np.float32(
        bus["max_rise"])))
    assert decode(ir, MAP.get("bus1.level_ambient")) == pytest.approx(
        float(np.float32(bus["level"][3])))
    assert decode(ir, MAP.get("bus1.hottest_phase")) == bus["hottest_phase"] == 1


def test_flag_bits_are_discrete_inputs_and_commands_read_zero(scanned):
    core, image = scanned
    di = image["discrete_input"]
    names = [p.name for p in CONFIG.points]
    for point, flags in (("motor1", int(core.thermal_outputs["flags"][0])),
                         ("bus1", int(core.busbar_outputs["flags"][0]))):
        base = FIRST_POINT + names.index(point) * BLOCK
        entries = [e for e in MAP.in_table("discrete_input") if e.name.startswith(point + ".")]
        assert len(entries) >= 7
        for e in entries:  # the flag of bit b at the block's base + b
            assert di[e.address] == (flags >> (e.address - base)) & 1, e.name
    assert di[MAP.get("motor1.alarm1", "discrete_input").address] == 1
    assert not image["coil"].any()
    assert math.isnan(decode(image["holding_register"], MAP.get("motor1.preset_theta")))
    assert decode(image["holding_register"], MAP.get("relay.unlock")) == 0


def test_settings_and_globals_read_back(scanned):
    _, image = scanned
    hr, ir = image["holding_register"], image["input_register"]
    assert decode(hr, MAP.get("motor1.i_b")) == 100.0
    assert decode(hr, MAP.get("motor1.k2")) == 3.0
    assert decode(hr, MAP.get("motor2.input_mode")) == 2  # samples
    assert decode(hr, MAP.get("bus1.warning_delta")) == 15.0
    assert decode(ir, MAP.get("relay.scans")) == 7  # modulo 2^32
    assert decode(ir, MAP.get("relay.heartbeat")) == 7
    assert decode(ir, MAP.get("relay.period")) == 10.0
    assert decode(ir, MAP.get("relay.points")) == 3


# ---------------------------------------------------------------- the compiled encoder

def scrambled(rng: np.random.Generator, table: np.ndarray) -> None:
    """Fill every field of ``table`` with values a coder must survive: NaN, infinities,
    negatives, huge numbers, any bit pattern of the integer fields."""
    for name in table.dtype.names:
        column = table[name]
        if column.dtype.kind == "f":
            pool = np.array([np.nan, np.inf, -np.inf, -1.5, 0.0, 0.49, 1.0, 3.7, 65535.4, 9.2e18,
                             -9.3e18, 2.0**63,
                             65536.0, 2.0**32 + 3, -(2.0**31), 1e300, 1e-40, 123.456])
            column[...] = np.where(rng.random(column.shape) < 0.5,
                                   rng.choice(pool, column.shape),
                                   rng.normal(0.0, 1e4, column.shape))
        else:
            info = np.iinfo(column.dtype)
            column[...] = rng.integers(info.min, info.max, column.shape, endpoint=True)


@pytest.mark.e2e
@given(st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_the_compiled_image_is_the_reference_image(seed):
    rng = np.random.default_rng(seed)
    core = scanned_core()
    relay = np.zeros(1, RELAY)
    tables = sources(core, relay)
    for table in tables.values():
        scrambled(rng, table)
    want, got = empty_image(MAP), empty_image(MAP)
    RegisterImage(MAP).fill(tables, want)
    compiled_encoder(MAP, tables, got).fill()
    for name in want:
        assert np.array_equal(want[name], got[name]), name


def test_the_compiled_encoder_follows_its_sources_in_place_and_refuses_bad_plans():
    core = scanned_core()
    relay = np.zeros(1, RELAY)
    tables = sources(core, relay)
    image = empty_image(MAP)
    encoder = compiled_encoder(MAP, tables, image)
    core.thermal_outputs["theta"][1] = 0.625
    relay["scans"] = 41
    encoder.fill()
    assert decode(image["input_register"], MAP.get("motor2.theta")) == 0.625
    assert decode(image["input_register"], MAP.get("relay.scans")) == 41
    from softrelay._regimage import ImageEncoder
    from softrelay.modbus.register_image import plan

    buffers, rows = plan(MAP, tables)
    bad = rows.copy()
    bad[0, 1] = 10**6
    with pytest.raises(ValueError, match="outside its table"):
        ImageEncoder(buffers, bad, *(image[t] for t in ("input_register", "holding_register",
                                                        "discrete_input", "coil")))
    bad = rows.copy()
    row = int(np.nonzero(bad[:, 4] == 0)[0][0])  # a float source
    bad[row, 3] = len(memoryview(buffers[bad[row, 2]]).cast("B"))
    with pytest.raises(ValueError, match="outside its buffer"):
        ImageEncoder(buffers, bad, *(image[t] for t in ("input_register", "holding_register",
                                                        "discrete_input", "coil")))


def scanned_core() -> ProtectionCore:
    thermal = CONFIG.thermal_points
    busbar = CONFIG.busbar_points
    return ProtectionCore([p.settings for p in thermal], [p.settings for p in busbar],
                          window_length=64, samples_per_cycle=32)


@pytest.mark.e2e
def test_the_relay_publishes_each_scans_image_with_its_snapshot(tmp_path):
    """What the slave will serve: the snapshot's image, of the same scan as its outputs."""
    from softrelay.modbus.register_image import IMAGE_PREFIX

    path = tmp_path / "relay.yaml"
    path.write_text(DEMO.replace("state/", f"{tmp_path}/").replace("port: 5020", "port: 0")
                    .replace("port: 9650", "port: 0"))
    with running(path, companion=False) as relay:
        for _ in range(5):
            relay.loop.step()
        snapshot = {name: table.copy() for name, table in relay.snapshot.read().items()}
        motor1 = relay.settings.current["motor1"]
        relay.settings.put("motor1", motor1.model_copy(update={"k2": 4.5}), "test")
        relay.loop.step()
        changed = relay.snapshot.read()[IMAGE_PREFIX + "holding_register"].copy()
    regmap = relay.regmap
    ir = snapshot[IMAGE_PREFIX + "input_register"]
    assert decode(ir, regmap.get("relay.scans")) == 5  # the fifth scan's image
    assert decode(ir, regmap.get("relay.heartbeat")) == 5
    assert decode(ir, regmap.get("relay.config_hash")) == regmap.config_hash
    assert decode(ir, regmap.get("relay.map_version")) == MAP_VERSION
    assert decode(ir, regmap.get("relay.period")) == pytest.approx(10.0)
    assert decode(ir, regmap.get("motor1.theta")) == pytest.approx(
        float(np.float32(snapshot["thermal"]["theta"][0])))
    assert decode(snapshot[IMAGE_PREFIX + "holding_register"], regmap.get("motor1.i_b")) == 100.0
    assert decode(snapshot[IMAGE_PREFIX + "holding_register"], regmap.get("motor1.k2")) == 3.0
    assert decode(changed, regmap.get("motor1.k2")) == 4.5  # a change shows at the next scan
