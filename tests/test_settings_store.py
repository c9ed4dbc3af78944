"""Settings changed in service carry over an upgrade of softrelay: the kept file names the
configuration by what the engineer wrote (not by softrelay's defaults), an older format is
migrated, a newer one (a downgrade) is said, a damaged one is unreadable, an edited
configuration file still wins."""

from __future__ import annotations

import json
import time

import pytest
from gpiozero.pins.mock import MockFactory
from pydantic import create_model

from softrelay.config import demo_path, load, parse
from softrelay.config.relay import RelayConfig
from softrelay.config.state import State
from softrelay.modbus.regmap import config_hash
from softrelay.records.kept_settings import FORMAT, changed_points, document
from softrelay.records.kept_settings import load as load_kept
from softrelay.records.thermal_memory import _checksum
from softrelay.relay.relay import Relay

from support.modbus import make_relay

DEMO = demo_path().read_text()


def kept_k2(config: RelayConfig, k2: float = 4.5) -> dict[str, dict]:
    """motor1's settings with k2 changed in service, as the relay keeps them."""
    current = {p.name: p.settings for p in config.points}
    configured = dict(current)
    current["motor1"] = current["motor1"].model_copy(update={"k2": k2})
    return changed_points(current, configured)


def current_of(config: RelayConfig) -> dict:
    return {p.name: p.settings for p in config.points}


def upgraded(config: RelayConfig) -> RelayConfig:
    """The same file read by a later softrelay whose schema gained settings with defaults
    (a top-level section's key and a state key, as 0.1.x releases added gpio.factory and
    others)."""
    new_state = create_model("NewState", __base__=State, fsync_every=(int, 1))
    model = create_model("UpgradedConfig", __base__=RelayConfig, state=(new_state, ...),
                         telemetry_port=(int, 9651))
    return model.model_validate(config.model_dump(exclude_defaults=True))


def test_kept_settings_carry_over_an_upgrade_that_adds_settings(tmp_path):
    config = load()
    newer = upgraded(config)
    assert config_hash(newer) != config_hash(config)  # the register map's hash moves on
    path = tmp_path / "demo-state.settings.json"
    path.write_text(json.dumps(document(kept_k2(config), config)))
    kept, messages = load_kept(path, current_of(newer), newer)
    assert kept["motor1"].k2 == 4.5, messages
    assert messages == ["settings of motor1 changed in service restored: k2 3.0 -> 4.5"]


def test_an_edited_configuration_file_still_wins(tmp_path):
    config = load()
    path = tmp_path / "s.json"
    path.write_text(json.dumps(document(kept_k2(config), config)))
    edited = parse(DEMO.replace("k2: 3.0", "k2: 3.5", 1), "relay.yaml")
    kept, messages = load_kept(path, current_of(edited), edited)
    assert kept == {} and "dropped: the configuration file changed since" in messages[0]


def format_1(config: RelayConfig, hashed: int) -> dict:
    """What softrelay 0.1.0 wrote: format 1, the configuration hash only."""
    payload = {"format": 1, "config_hash": hashed, "points": kept_k2(config)}
    return {"payload": payload, "sha256": _checksum(payload)}


def test_a_format_1_file_is_migrated_and_restored(tmp_path):
    config = load()
    path = tmp_path / "s.json"
    path.write_text(json.dumps(format_1(config, config_hash(config))))
    kept, messages = load_kept(path, current_of(config), config)
    assert kept["motor1"].k2 == 4.5
    assert f"format 1 (softrelay 0.1.0), migrated to format {FORMAT}" in messages[0]
    assert "restored: k2 3.0 -> 4.5" in messages[1]


def test_a_format_1_file_whose_hash_moved_is_dropped_saying_why(tmp_path):
    config = load()
    path = tmp_path / "s.json"
    path.write_text(json.dumps(format_1(config, config_hash(config) ^ 1)))
    kept, messages = load_kept(path, current_of(config), config)
    assert kept == {}
    assert "format 1" in messages[0] and "motor1" in messages[0]
    assert "write them again" in messages[0]


def test_a_newer_format_is_not_restored_and_said(tmp_path):
    config = load()
    doc = document(kept_k2(config), config)
    doc["payload"].update(format=FORMAT + 1, written_by="9.0.0")
    doc["sha256"] = _checksum(doc["payload"])
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    kept, messages = load_kept(path, current_of(config), config)
    assert kept == {}
    assert f"format {FORMAT + 1} (written by softrelay 9.0.0)" in messages[0]
    assert "downgrade" in messages[0]


def test_a_damaged_file_is_unreadable_not_restored(tmp_path):
    config = load()
    path = tmp_path / "s.json"
    raw = json.dumps(document(kept_k2(config), config))
    for damaged in (raw.replace("4.5", "9.5"), raw[: len(raw) // 2], "[]"):
        path.write_text(damaged)
        kept, messages = load_kept(path, current_of(config), config)
        assert kept == {} and "unreadable" in messages[0], damaged


@pytest.mark.e2e
def test_an_upgraded_relay_restores_what_the_previous_release_kept_and_says_so(tmp_path):
    """The previous softrelay's two files (format 1) in the state directory: the relay of
    this one starts with their theta, latch and changed setting, and its events say both
    were migrated."""
    first = make_relay(tmp_path)  # writes relay.yaml; its own files are replaced below
    try:
        hashed = config_hash(first.config)
        names = first.thermal_names
    finally:
        first.start(companion=False)
        first.stop()
    points = {name: {"theta": 0.75, "start_elapsed": 0.0, "start_count": 4, "trip_count": 1,
                     "trip_latched": 1 if name == "motor1" else 0, "alarm1": 0, "alarm2": 0,
                     "running": 0, "starting": 0} for name in names}
    payload = {"version": 1, "saved_wall": time.time(), "points": points,
               "extra": {"event_seq": 40}}
    (tmp_path / "demo-state.json").write_text(
        json.dumps({"payload": payload, "sha256": _checksum(payload)}))
    (tmp_path / "demo-state.settings.json").write_text(
        json.dumps(format_1(first.config, hashed)))
    path = tmp_path / "relay.yaml"
    relay = Relay(load(path), str(path), factory=MockFactory())
    try:
        texts = [e.text for e in relay.events.ring]
        assert relay.core.thermal_state["theta"][0] == pytest.approx(0.75, abs=1e-3)
        assert relay.core.thermal_state["trip_latched"][0] == 1
        assert relay.core.thermal_settings["k2"][0] == 4.5
        assert any("thermal memory restored" in t for t in texts), texts
        assert any("in format 1: migrated to format" in t for t in texts), texts
        assert any(f"migrated to format {FORMAT}" in t for t in texts), texts
        assert not list(tmp_path.glob("*.corrupt-*"))
    finally:
        relay.start(companion=False)
        relay.stop()
    doc = json.loads((tmp_path / "demo-state.settings.json").read_text())
    assert doc["payload"]["format"] == FORMAT  # written again in the present format
    assert doc["payload"]["points"]["motor1"]["k2"] == 4.5
