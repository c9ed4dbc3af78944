"""The configuration file: the demo loads, and every error names file, line, key and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from softrelay.config import ConfigError, demo_path, load, parse

from support.configs import DEMO, edited, line_of, problems_of


def test_the_embedded_demo_is_valid_and_is_the_file_in_config():
    config = load()
    assert config.name == "demo"
    assert demo_path().resolve() == (Path(__file__).parents[1] / "config/demo.yaml").resolve()
    assert [p.name for p in config.points] == ["motor1", "motor2", "bus1"]
    assert config.modbus.host == "127.0.0.1" and config.modbus.port == 5020
    assert config.plant is not None and config.plant.motors[0].trip_coil == "trip"


@pytest.mark.e2e
def test_check_prints_what_would_run():
    result = subprocess.run([sys.executable, "-m", "softrelay", "check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "scan every 10 ms" in result.stdout
    assert "point motor1 (thermal, phasors): I_B 100 A" in result.stdout
    assert "coil trip (pin 17): motor1.trip [min pulse 0.5 s]" in result.stdout


@pytest.mark.e2e
def test_check_fails_with_every_problem_and_runs_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(edited("t_cool: 180.0", "t_cool: 30.0").replace("kalman_q:", "kalman_qq:"))
    result = subprocess.run([sys.executable, "-m", "softrelay", "check", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{bad}:" in result.stderr
    assert "points[0].settings: t_cool (T-, 30 s) must not be shorter" in result.stderr
    assert "points[2].settings.kalman_qq: unknown key" in result.stderr
    assert "2 problem(s): nothing would run" in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        ("period: 0.01 ", "period: 0.0005 ", "scan.period", "greater than or equal to 0.001"),
        ("period: 0.01 ", "period: 120 ", "scan.period", "less than or equal to 60"),
        ("power_loss: cool", "power_loss: warm", "state.power_loss",
         "'freeze', 'cool' or 'preset'"),
        ("k2: 3.0", "k3: 3.0", "points[0].settings.k3", "unknown key"),
        ("theta_al2: 1.05", "theta_al2: 1.3", "points[0].settings",
         "theta_al2 (1.3) must be below theta_trip (1.2)"),
        ("i_b: 100.0", "i_b: -100.0", "points[0].settings.i_b", "greater than 0"),
        ("    angles: [m1.aa, m1.ab, m1.ac]\n", "", "points[0]",
         "settings.input_mode is 'phasors' but the point has no angle signals"),
        ("{name: healthy, pin: 24, healthy: true}",
         "{name: healthy, pin: 24, healthy: true, flags: [motor1.trip]}", "outputs[5]",
         "a healthy contact is driven by health alone"),
        ("poll: 0.05, unit: A}", "poll: 0.05, unit: A, scale: fast}", "signals[0].scale",
         "valid number"),
        ("kind: busbar", "kind: transformer", "points[2]", "'thermal', 'busbar'"),
        ("    timeout: 0.1\n    devices:", "    timeout: 0.1\n    baud: 9600\n    devices:",
         "buses[0].baud", "unknown key"),
        ("        emissivity: 0.55 ", "        emissivity: 1.5 ", "buses[1].devices[0].emissivity",
         "less than or equal to 1"),
        ("        unit: 5\n", "        unit: 250\n", "buses[1]",
         "gw: an RTU unit id is 1..247, not 250"),
        ("        unit: 2\n", "        unit: 1\n", "buses[0]",
         "devices 'm1' and 'b1' share unit id 1"),
        ("    simulated: true\n    timeout: 0.1\n", "    simulated: false\n    timeout: 0.1\n",
         "buses[0]", "port 0 (any free port) is for a simulated gateway only"),
        ("        profile: sdm630\n        simulate: {current.a: motor1",
         "        profile: sdm630\n        emissivity: 0.5\n        simulate: {current.a: motor1",
         "buses[0].devices[0]", "only a thermal_gateway takes an 'emissivity'"),
    ],
)
def test_errors_name_the_key_path_the_line_and_the_reason(old, new, path, reason):
    text = edited(old, new)
    found = problems_of(text)
    assert len(found) == 1, found
    message = found[0]
    assert message.startswith("relay.yaml:")
    assert f": {path}: " in message, message
    assert reason in message, message


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        ("bus: i2c1, address: amb.temperature", "bus: i2c2, address: amb.temperature",
         "signals[10].bus", "no bus named 'i2c2'"),
        ("address: m1.current.b,", "address: m1.curent.b,", "signals[1].address",
         "device 'm1' has no register 'curent.b' (voltage.a,"),
        ("address: gw.ch3,", "address: gx.ch3,", "signals[9].address",
         "bus 'rs485' has no device 'gx' (devices: gw)"),
        ("address: gw.ch3,", "address: gw.ch4,", "signals[9].address",
         "device 'gw' has no register 'ch4'"),
        ("plant:\n", "plant:\n  faults: [{bus: i2c1, address: amb, kind: refused}]\n",
         "plant.faults[0].kind", "no 'refused' on an I2C bus: a network fault"),
        ("plant:\n", "plant:\n  faults: [{bus: i2c1, address: amx, kind: nack}]\n",
         "plant.faults[0].address", "no sensor 'amx' on this bus (sensors: amb)"),
        ("plant:\n", "plant:\n  faults: [{bus: i2c1, address: amb.temperature, kind: nack}]\n",
         "plant.faults[0].address", "fails a whole chip's transactions: address it as 'amb'"),
        ("plant:\n", "plant:\n  faults: [{bus: i2c1, address: amb.pressure, kind: stuck}]\n",
         "plant.faults[0].address", "'amb' has no quantity 'pressure' (temperature)"),
        ("plant:\n", "plant:\n  faults: [{bus: rs485, address: gx.ch1, kind: stuck}]\n",
         "plant.faults[0].address", "bus 'rs485' has no device 'gx'"),
        ("ambient: b1.tamb", "ambient: b1.tam", "points[2].ambient", "no signal named 'b1.tam'"),
        ("currents: [m1.ia, m1.ib, m1.ic]", "currents: [m1.ia, m1.ix, m1.ic]",
         "points[0].currents[1]", "no signal named 'm1.ix'"),
        ("flags: [motor1.trip], min_pulse", "flags: [motor1.tripp], min_pulse",
         "outputs[0].flags[0]", "a thermal point has no flag 'tripp'"),
        ("flags: [motor1.trip], min_pulse", "flags: [motor3.trip], min_pulse",
         "outputs[0].flags[0]", "no point named 'motor3'"),
        ("{name: reset, pin: 5, command: reset}",
         "{name: reset, pin: 5, command: reset, points: [motor9]}", "inputs[0].points[0]",
         "no point named 'motor9'"),
        ("trip_coil: trip", "trip_coil: tripcoil", "plant.motors[0].trip_coil",
         "no output named 'tripcoil'"),
        ("{name: warning, pin: 22,", "{name: alarm, pin: 22,", "outputs[2].name",
         "'alarm' is already the name of outputs[1]"),
    ],
)
def test_cross_references_are_checked(old, new, path, reason):
    text = edited(old, new)
    found = problems_of(text)
    assert len(found) == 1, found
    assert f": {path}: " in found[0] and reason in found[0], found[0]
    assert found[0].startswith(f"relay.yaml:{line_of(text, new.strip().splitlines()[-1])}:")


def test_a_yaml_syntax_error_names_its_line():
    found = problems_of("scan: {period: 0.01\nstate: x\n")
    assert len(found) == 1 and found[0].startswith("relay.yaml:2: not valid YAML: "), found
    assert "expected ',' or '}'" in found[0]  # libyaml's words (or PyYAML's)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read: No such file or directory"):
        load(tmp_path / "absent.yaml")


def test_an_unlock_section_is_refused_with_its_replacement_and_old_modbus_keys_are_named():
    found = problems_of(edited("access:", "unlock: {code: 123456}\naccess:"))
    assert any("unlock: replaced by 'access:'" in p for p in found), found
    found = problems_of(edited("  port: 5020", "  port: 5020\n  unlock_code: 1234"))
    assert any("modbus.unlock_code: unknown key" in p for p in found), found


def test_telemetry_sections_name_what_is_wrong():
    text = edited("metrics:", """snmp: {host: nms, user: relay, auth_key: long-enough,
       flags: [trip, tripp]}
mqtt: {host: broker, tls: {ca: ca.pem, cert: me.pem}}
metrics:""").replace("host: 127.0.0.1               # off", "host: localhost  # off")
    problems = problems_of(text)
    assert any("snmp: give priv_key or priv_key_env: traps are sent authPriv only" in p
               for p in problems), problems
    assert any("mqtt.tls: give both cert and key" in p for p in problems), problems
    assert any("metrics: host 'localhost' is not an IP address to bind" in p
               for p in problems), problems
    fixed = text.replace("auth_key: long-enough,", "auth_key: long-enough, priv_key: "
                         "also-long,").replace(", cert: me.pem", "").replace(
        "host: localhost", "host: 127.0.0.1")
    assert problems_of(fixed) == [p for p in problems_of(fixed) if "snmp.flags[1]" in p]
    assert "'tripp' is no flag" in problems_of(fixed)[0]


def test_check_says_what_telemetry_is_on():
    from softrelay.cli.summary import telemetry_lines

    config = parse(edited("metrics:", """snmp: {host: nms, user: relay, auth_key_env: A,
       priv_key_env: B}
mqtt: {host: broker, tls: {ca: ca.pem}, telemetry_every: 2}
metrics:"""), "relay.yaml")
    lines = telemetry_lines(config)
    assert lines[0] == "  metrics: http://127.0.0.1:9650/metrics"
    assert lines[1].startswith("  mqtt: broker:8883 TLS, topic softrelay/demo, telemetry "
                               "every 2 s")
    assert "engine ID 0x80001f88046465" in lines[2] and "on trip, critical" in lines[2]


def test_a_key_given_twice_is_an_error_naming_both_lines():
    text = edited("      t_heat: 60.0 ", "      t_heat: 6.0\n      t_heat: 60.0 ")
    first = line_of(text, "t_heat: 6.0")
    found = problems_of(text)
    assert found == [f"relay.yaml:{first + 1}: points[0].settings.t_heat: given twice, at "
                     f"lines {first} and {first + 1} (YAML would silently keep the last): "
                     "remove one"]


def test_a_file_that_is_not_utf8_names_its_line_and_byte(tmp_path):
    path = tmp_path / "relay.yaml"
    path.write_bytes(DEMO.replace("name: demo", "name: demo  # d\xe9mo", 1).encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load(path)
    (problem,) = caught.value.problems
    assert problem.line == line_of(DEMO, "name: demo")
    assert "not UTF-8: byte 0xe9 at offset" in problem.reason


@pytest.mark.parametrize(("pin", "reason"), [
    (99, "pin 99 is not a GPIO pin of the 40-pin header"),
    ("GPIO28", "'GPIO28' is not a GPIO pin"),
    ("J8:6", "pin 'J8:6' is GND (header J8 pin 6), not a GPIO pin"),
])
def test_a_pin_gpiozero_would_refuse_is_refused_with_the_reason(pin, reason):
    found = problems_of(edited("{name: trip, pin: 17,", f"{{name: trip, pin: {pin!r},"))
    assert len(found) == 1 and ": outputs[0].pin: " in found[0] and reason in found[0], found


def test_gpiozero_pin_names_are_accepted_and_two_names_of_one_pin_are_one_pin():
    # BOARD13 is GPIO27, the alarm coil's pin; BOARD11 and J8:11 are GPIO17 (not in the demo)
    assert parse(edited("{name: trip, pin: 17,", "{name: trip, pin: 'J8:11',"))
    assert parse(edited("{name: reset, pin: 5,", "{name: reset, pin: BCM5,"))
    found = problems_of(edited("{name: trip, pin: 17,", "{name: trip, pin: BOARD13,"))
    assert len(found) == 1 and ": outputs[1].pin: GPIO27 is already the pin of coil 'trip' " \
        "(outputs[0]): one pin, one coil" in found[0], found
    found = problems_of(edited("{name: reset, pin: 5,", "{name: reset, pin: 24,"))
    assert len(found) == 1 and ": inputs[0].pin: GPIO24 is already the pin of coil " \
        "'healthy'" in found[0], found


def test_state_paths_are_checked_where_they_resolve_and_nothing_is_made(tmp_path):
    state = tmp_path / "xdg" / "softrelay" / "demo"
    environ = {"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    assert parse(DEMO, "relay.yaml", environ)
    assert not (tmp_path / "xdg").exists()  # looked at, not created
    (state / "demo-state.json").mkdir(parents=True)  # run took it for a corrupt file
    with pytest.raises(ConfigError) as caught:
        parse(DEMO, "relay.yaml", environ)
    found = [str(p) for p in caught.value.problems]
    assert found == [f"relay.yaml:{line_of(DEMO, 'file: demo-state.json')}: state.file: the "
                     f"thermal memory would be {state / 'demo-state.json'}, which is a "
                     "directory: name a file"], found
    assert [p.name for p in state.iterdir()] == ["demo-state.json"]


def test_more_points_than_the_map_holds_are_counted_however_the_key_is_written():
    from softrelay.modbus.regmap import MAX_POINTS

    items = "".join(f"  - {{name: p{i}, kind: thermal, currents: [a, b, c], settings: *s}}\n"
                    for i in range(1, MAX_POINTS + 1))
    head = ("scan: {period: 0.01}\nstate: {file: s.json}\n"
            "x: &s {i_b: 100.0, t_heat: 600.0, t_cool: 1800.0, input_mode: magnitudes}\n")
    for key in ("points", '"points"'):  # the fast pass reads the first; the count, both
        text = head + f"{key}:\n  - {{name: p0, kind: thermal, currents: [a, b, c], " \
            "settings: *s}\n" + items
        found = problems_of(text)
        assert len(found) == 1 and found[0].startswith("relay.yaml:4: points: "), found
        assert f"the register map holds at most {MAX_POINTS}" in found[0]


def test_an_error_under_a_number_key_names_its_line():
    text = edited("  port: 5020", "  port: 5020\n  groups:\n    7: [motor1, motor9]")
    found = problems_of(text)
    assert found == [f"relay.yaml:{line_of(text, '7: [motor1, motor9]')}: modbus.groups[7][1]: "
                     "no point named 'motor9'"], found
