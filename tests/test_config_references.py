"""Each cross-reference check alone: the demo with one name broken, the check's exact error
(key path, reason), and nothing from a check that sees nothing wrong. The models validate
one object at a time (``RelayConfig.model_validate``); the checks see the whole file.

``references`` runs every check of ``CHECKS`` in order, and ``parse`` turns each of their
(key path, reason) into ``file:line: path: reason``: the last tests hold the order and the
words a user reads."""

from __future__ import annotations

import copy

import pytest
import yaml

from softrelay.config import ConfigError, demo_path, parse
from softrelay.config import references as refs
from softrelay.config.relay import RelayConfig

DEMO = yaml.safe_load(demo_path().read_text())


def demo(change=None) -> RelayConfig:
    """The demo's models, validated one object at a time, after ``change(data)``."""
    data = copy.deepcopy(DEMO)
    if change is not None:
        change(data)
    return RelayConfig.model_validate(data)


def test_the_demo_ties_up_under_every_check():
    config = demo()
    assert {check.__name__: check(config) for check in refs.CHECKS} == {
        check.__name__: [] for check in refs.CHECKS}


def test_snmp_flags():
    def change(d):
        d["snmp"] = {"host": "127.0.0.1", "user": "relay", "auth_key": "a" * 12,
                     "priv_key": "b" * 12, "flags": ["trip", "tripp"]}
    assert refs.snmp_flags(demo(change)) == [(("snmp", "flags", 1), (
        "'tripp' is no flag (thermal: " + ", ".join(refs.THERMAL_FLAGS) + "; busbar: "
        + ", ".join(refs.BUSBAR_FLAGS) + ")"))]


def test_unique_names():
    def change(d):
        d["signals"].append(dict(d["signals"][0]))
        d["outputs"][2]["name"] = "trip"
    assert refs.unique_names(demo(change)) == [
        (("signals", 14, "name"), "'m1.ia' is already the name of signals[0]"),
        (("outputs", 2, "name"), "'trip' is already the name of outputs[0]")]


def test_signal_addresses():
    def change(d):
        d["signals"][0]["bus"] = "nowhere"
        d["signals"][1]["address"] = "m9.current.b"
        d["signals"][2]["address"] = "m1.current.x"
        d["signals"][6]["address"] = "ct2.temperature"
    sdm630 = ("voltage.a, current.a, phase_angle.a, angle.a, voltage.b, current.b, "
              "phase_angle.b, angle.b, voltage.c, current.c, phase_angle.c, angle.c, "
              "frequency")
    assert refs.signal_addresses(demo(change)) == [
        (("signals", 0, "bus"), "no bus named 'nowhere'"),
        (("signals", 1, "address"), "'m9.current.b': bus 'meters' has no device 'm9' "
                                    "(devices: m1, b1)"),
        (("signals", 2, "address"), f"'m1.current.x': device 'm1' has no register "
                                    f"'current.x' ({sdm630})"),
        (("signals", 6, "address"), "'ct2.temperature' is not on bus 'spi0' (ct2.window)")]


def test_signal_addresses_of_a_gateway_with_its_own_registers():
    def change(d):
        d["buses"][1]["devices"][0]["registers"] = [{"name": "ch1", "address": 7},
                                                    {"name": "status", "address": 9}]
        d["signals"][7]["address"] = "gw.ch4"
    assert refs.signal_addresses(demo(change)) == [
        (("signals", 7, "address"), "'gw.ch4': device 'gw' has no register 'ch4' (ch1, ch2, "
                                    "ch3, emissivity, scaling, status)")]


def test_point_signals():
    def change(d):
        d["points"][0]["currents"][1] = "m1.nope"
        d["points"][2]["ambient"] = "m2.win"
        d["points"][1]["samples"] = "m1.ic"
    assert refs.point_signals(demo(change)) == [
        (("points", 0, "currents", 1), "no signal named 'm1.nope'"),
        (("points", 1, "samples"), "signal 'm1.ic' is not a sample window (an MCP3208's "
                                   "'<sensor>.window')"),
        (("points", 2, "ambient"), "'m2.win' is a sample window: a thermal point reads it "
                                   "as 'samples'")]


def test_output_flags():
    def change(d):
        d["outputs"][0]["flags"] = ["motor9.trip", "bus1.trip"]
    assert refs.output_flags(demo(change)) == [
        (("outputs", 0, "flags", 0), "'motor9.trip': no point named 'motor9'"),
        (("outputs", 0, "flags", 1), "'bus1.trip': a busbar point has no flag 'trip' "
         "(flags: " + ", ".join(sorted(refs.BUSBAR_FLAGS)) + ")")]


def test_gpio_pins():
    def change(d):
        d["inputs"][0]["pin"] = "BOARD11"  # GPIO17: the trip coil's
    assert refs.gpio_pins(demo(change)) == [
        (("inputs", 0, "pin"), "GPIO17 ('BOARD11') is already the pin of coil 'trip' "
                               "(outputs[0]): one pin, one device")]


def test_group_points():
    def change(d):
        d["modbus"]["groups"] = {3: ["motor1", "motor7"]}
    assert refs.group_points(demo(change)) == [
        (("modbus", "groups", 3, 1), "no point named 'motor7'")]


def test_input_points():
    def change(d):
        d["inputs"][0]["points"] = ["bus1", "bus2"]
    assert refs.input_points(demo(change)) == [
        (("inputs", 0, "points", 1), "no point named 'bus2'")]


def test_bus_needs():
    def change(d):
        del d["plant"]
        d["buses"][2]["sensors"][0]["max_speed_hz"] = 100_000
    assert refs.bus_needs(demo(change)) == [
        (("buses", 0, "simulated"), "a simulated bus needs a plant (the 'plant' section)"),
        (("buses", 1, "simulated"), "a simulated bus needs a plant (the 'plant' section)"),
        (("buses", 2, "sensors", 0, "max_speed_hz"), "a conversion takes 240.0 us at 100000 "
         "Hz, longer than the 208.3 us between conversions the sampling needs"),
        (("buses", 2, "simulated"), "a simulated bus needs a plant (the 'plant' section)"),
        (("buses", 3, "simulated"), "a simulated bus needs a plant (the 'plant' section)")]


def test_plant_faults():
    def change(d):
        d["buses"].append({"name": "real", "kind": "i2c", "sensors": [
            {"name": "t", "chip": "tmp117", "address": 0x49}]})
        d["plant"]["faults"] = [
            {"bus": "nowhere", "address": "*", "kind": "nack"},
            {"bus": "real", "address": "t", "kind": "nack"},
            {"bus": "spi0", "address": "ct2", "kind": "slow"},
            {"bus": "spi0", "address": "ct2.window", "kind": "stuck"},
            {"bus": "i2c1", "address": "amb.temperature", "kind": "nack"},
            {"bus": "i2c1", "address": "amx", "kind": "sentinel"},
            {"bus": "meters", "address": "m3.current.a", "kind": "stuck"},
            {"bus": "meters", "address": "m1.current.a", "kind": "stuck"},
            {"bus": "meters", "address": "m1.current.a", "kind": "nack"},
            {"bus": "meters", "address": "m1", "kind": "nack"}]
    assert refs.plant_faults(demo(change)) == [
        (("plant", "faults", 0, "bus"), "no bus named 'nowhere'"),
        (("plant", "faults", 1, "bus"), "faults are injected on simulated buses; 'real' is a "
                                        "real 'i2c' bus"),
        (("plant", "faults", 2, "kind"), "no 'slow' on an SPI bus: the SPI master clocks "
                                         "every bit: a chip cannot answer late"),
        (("plant", "faults", 3, "address"), "'ct2.window': no 'stuck' here: a frozen ADC "
         "input is a DC level, which bias removal reads as no current: no driver could tell "
         "it; inject 'sentinel' (a broken input)"),
        (("plant", "faults", 4, "address"), "'amb.temperature': a 'nack' fails a whole "
         "chip's transactions: address it as 'amb' (or '*')"),
        (("plant", "faults", 5, "address"), "'amx': no sensor 'amx' on this bus (sensors: "
                                            "amb)"),
        (("plant", "faults", 6, "address"), "'m3.current.a': bus 'meters' has no device 'm3' "
                                            "(devices: m1, b1)"),
        (("plant", "faults", 8, "address"), "'nack' is a fault of a device or of the server, "
                                            "not of 'm1.current.a': address it as 'm1' (or "
                                            "'*')")]


def test_plant_coils():
    def change(d):
        d["plant"]["motors"][0]["close_coil"] = "close"
    assert refs.plant_coils(demo(change)) == [
        (("plant", "motors", 0, "close_coil"), "no output named 'close'")]


def test_the_checks_run_in_the_order_of_the_file_s_subjects():
    assert [c.__name__ for c in refs.CHECKS] == [
        "snmp_flags", "unique_names", "signal_addresses", "point_signals", "output_flags",
        "gpio_pins", "group_points", "input_points", "bus_needs", "plant_faults",
        "plant_coils"]

    def change(d):
        d["plant"]["motors"][0]["close_coil"] = "close"  # the last check
        d["inputs"][0]["points"] = ["bus2"]
        d["signals"][0]["bus"] = "nowhere"  # an early one
    config = demo(change)
    assert refs.references(config) == (refs.signal_addresses(config)
                                       + refs.input_points(config)
                                       + refs.plant_coils(config))


def test_a_user_reads_each_problem_with_its_line_and_key(tmp_path):
    text = demo_path().read_text().replace("close_coil: permissive", "close_coil: close")
    text = text.replace("{name: reset, pin: 5, command: reset}",
                        "{name: reset, pin: 5, command: reset, points: [bus2]}")
    with pytest.raises(ConfigError) as err:
        parse(text, "demo.yaml", environ={"STATE_DIRECTORY": str(tmp_path)})
    lines = text.splitlines()
    close = next(i for i, s in enumerate(lines) if "close_coil: close" in s) + 1
    inputs = next(i for i, s in enumerate(lines) if "points: [bus2]" in s) + 1
    assert str(err.value).splitlines() == [
        f"demo.yaml:{inputs}: inputs[0].points[0]: no point named 'bus2'",
        f"demo.yaml:{close}: plant.motors[0].close_coil: no output named 'close'"]
