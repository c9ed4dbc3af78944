"""Relay coils through gpiozero's MockFactory, and the commands that act on latches."""

from __future__ import annotations

import time

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.config.outputs import Input, Output
from softrelay.config.points import BusbarPoint, ThermalPoint
from softrelay.core import BusbarFlag, BusbarSettings, ProtectionCore, ThermalFlag, ThermalSettings
from softrelay.gpio.buttons import CommandButtons
from softrelay.gpio.coils import CoilBank
from softrelay.relay.commands import CommandQueue, Request

from support.core import set_currents

MOTOR = ThermalPoint(name="m1", kind="thermal", currents=("a", "b", "c"), angles=("x", "y", "z"),
                     settings=ThermalSettings(i_b=100, t_heat=10, t_cool=30, theta_reset=0.5,
                                              theta_al1=0.6, theta_al2=0.9, theta_inhibit=0.7,
                                              theta_trip=1.0))
BUS = BusbarPoint(name="b1", kind="busbar", phases=("ta", "tb", "tc"), ambient="tam",
                  settings=BusbarSettings())
INDEX = {"m1": ("thermal", 0, MOTOR), "b1": ("busbar", 0, BUS)}


@pytest.fixture
def factory():
    return MockFactory()


def core() -> ProtectionCore:
    return ProtectionCore([MOTOR.settings], [BUS.settings])


def bank(outputs, factory, **kw) -> CoilBank:
    coils = CoilBank([Output(**o) for o in outputs], INDEX, factory=factory, **kw)
    coils.healthy = True
    return coils


def set_flags(c: ProtectionCore, thermal=0, busbar=0):
    c.thermal_outputs["flags"] = thermal
    c.busbar_outputs["flags"] = busbar


def history(factory: MockFactory, pin: int) -> list[bool]:
    """Every state the pin has had, first to last (gpiozero's ``assert_states`` zips the two
    lists, so a pin that never moved would pass it)."""
    return [bool(change.state) for change in factory.pin(pin).states]


def test_a_coil_is_an_or_of_flags_across_points(factory):
    c = core()
    coils = bank([{"name": "alarm", "pin": 27, "flags": ["m1.alarm2", "b1.critical"]}], factory)
    for thermal, busbar in [(0, 0), (ThermalFlag.ALARM2, 0), (0, BusbarFlag.CRITICAL),
                            (ThermalFlag.ALARM2, BusbarFlag.CRITICAL), (ThermalFlag.ALARM1, 0)]:
        set_flags(c, thermal, busbar)
        coils.drive(c, 1.0)
    assert history(factory, 27) == [False, True, False]


def test_a_permissive_is_energised_while_none_of_its_flags_is_set(factory):
    c = core()
    coils = bank([{"name": "permit", "pin": 23, "flags": ["m1.start_inhibit", "m1.trip"],
                   "invert": True}], factory)
    set_flags(c)
    coils.drive(c, 0.0)
    set_flags(c, ThermalFlag.START_INHIBIT)
    coils.drive(c, 1.0)
    set_flags(c)
    coils.drive(c, 2.0)
    assert history(factory, 23) == [False, True, False, True]


def test_the_minimum_pulse_holds_a_short_operation(factory):
    c = core()
    coils = bank([{"name": "trip", "pin": 17, "flags": ["m1.trip"], "min_pulse": 0.5}], factory)
    history = []
    for now, flags in [(0.0, ThermalFlag.TRIP), (0.1, 0), (0.4, 0), (0.5, 0), (0.6, 0)]:
        set_flags(c, flags)
        coils.drive(c, now)
        history.append(factory.pin(17).state)
    assert history == [True, True, True, False, False]


def test_a_latched_coil_stays_until_released_once_its_flags_have_gone(factory):
    c = core()
    coils = bank([{"name": "lockout", "pin": 6, "flags": ["b1.critical"], "latched": True}],
                 factory)
    set_flags(c, busbar=BusbarFlag.CRITICAL)
    coils.drive(c, 0.0)
    assert coils.release_latches() == []  # the condition is still there
    set_flags(c)
    coils.drive(c, 1.0)
    assert factory.pin(6).state  # latched
    assert coils.release_latches() == ["lockout"]
    coils.drive(c, 2.0)
    assert history(factory, 6) == [False, True, False]


def test_a_fail_safe_coil_is_energised_normally_and_drops_to_operate_or_when_unhealthy(factory):
    c = core()
    coils = bank([{"name": "trip_fs", "pin": 12, "flags": ["m1.trip"], "fail_safe": True}],
                 factory)
    set_flags(c)
    coils.drive(c, 0.0)
    assert factory.pin(12).state  # normal: energised
    set_flags(c, ThermalFlag.TRIP)
    coils.drive(c, 1.0)
    assert not factory.pin(12).state  # operated: dropped
    set_flags(c)
    coils.drive(c, 2.0)
    coils.healthy = False
    coils.drive(c, 3.0)
    assert history(factory, 12) == [False, True, False, True, False]


def test_the_healthy_contact_follows_health_and_the_safe_state_drops_everything(factory):
    c = core()
    coils = bank([{"name": "healthy", "pin": 24, "healthy": True},
                  {"name": "permit", "pin": 23, "flags": ["m1.trip"], "invert": True}], factory)
    set_flags(c)
    coils.drive(c, 0.0)
    assert coils.energised() == {"healthy": True, "permit": True}
    coils.healthy = False
    coils.drive(c, 1.0)
    assert coils.energised() == {"healthy": False, "permit": True}
    coils.safe_state()
    coils.safe_state()
    assert coils.energised() == {"healthy": False, "permit": False}


def test_losing_health_drops_the_healthy_contact_and_operates_fail_safe_coils_at_once(factory):
    """No scan is needed: the scan may be what stalled."""
    c = core()
    coils = bank([{"name": "healthy", "pin": 24, "healthy": True},
                  {"name": "trip_fs", "pin": 12, "flags": ["m1.trip"], "fail_safe": True},
                  {"name": "alarm", "pin": 27, "flags": ["m1.alarm1"]}], factory)
    set_flags(c)
    coils.drive(c, 0.0)
    assert coils.energised() == {"healthy": True, "trip_fs": True, "alarm": False}
    coils.set_healthy(False)
    assert coils.energised() == {"healthy": False, "trip_fs": False, "alarm": False}
    coils.set_healthy(True)
    coils.drive(c, 1.0)
    assert coils.energised() == {"healthy": True, "trip_fs": True, "alarm": False}


def test_coil_changes_are_reported(factory):
    changes = []
    c = core()
    coils = bank([{"name": "trip", "pin": 17, "flags": ["m1.trip"]}], factory,
                 on_change=lambda name, on, now: changes.append((name, on, now)))
    for now, flags in [(0.0, 0), (1.0, ThermalFlag.TRIP), (2.0, ThermalFlag.TRIP), (3.0, 0)]:
        set_flags(c, flags)
        coils.drive(c, now)
    assert changes == [("trip", True, 1.0), ("trip", False, 3.0)]
    assert history(factory, 17) == [False, True, False]  # and the pin did as reported


def scan(c: ProtectionCore, queue: CommandQueue, now: float) -> None:
    queue.apply(c, now)
    c.thermal_inputs["stamp"] = now
    c.scan(now, 0.1)
    queue.settle(c, now)


def test_reset_is_refused_while_hot_and_accepted_once_cool(factory):
    events = []
    c = core()
    queue = CommandQueue(["m1"], record=lambda *e: events.append(e))
    set_currents(c, 0.0, now=0.0)
    queue.put(Request("preset", ("m1",), 1.1, "terminal"))
    scan(c, queue, 0.1)
    assert c.thermal_outputs["flags"][0] & ThermalFlag.TRIP
    queue.put(Request("reset", source="modbus"))
    scan(c, queue, 0.2)
    assert c.thermal_outputs["flags"][0] & ThermalFlag.TRIP
    queue.put(Request("preset", ("m1",), 0.2))
    queue.put(Request("reset", source="gpio:reset"))
    scan(c, queue, 0.3)
    assert not c.thermal_outputs["flags"][0] & ThermalFlag.TRIP
    assert c.thermal_inputs["command"][0] == 0
    texts = [(e[1], e[2]) for e in events]
    assert texts == [
        ("preset m1", "from terminal; theta 0 -> 1.1"),  # old -> new
        ("reset all", "from modbus; refused while theta >= theta_reset: m1"),
        ("preset m1", "from local; theta 1.093 -> 0.2"),
        ("reset all", "from gpio:reset; trips reset"),
    ]


def relay_scan(c: ProtectionCore, queue: CommandQueue, coils: CoilBank, now: float) -> None:
    """One scan in the relay's stage order (runtime.Relay: commands applied before the core;
    after it the commands settled, then the coils driven)."""
    scan(c, queue, now)
    coils.drive(c, now)


def test_a_reset_drops_a_latched_trip_coil_in_the_scan_that_resets_the_trip(factory):
    """"reset m1: trips reset" and the coil latched on the trip drops with it: no
    acknowledge needed, no scan later."""
    events = []
    c = core()
    coils = bank([{"name": "lockout", "pin": 17, "flags": ["m1.trip"], "latched": True}],
                 factory)
    queue = CommandQueue(["m1"], release_latches=coils.release_latches,
                         record=lambda *e: events.append(e))
    set_currents(c, 0.0, now=0.0)
    queue.put(Request("preset", ("m1",), 1.1))  # trips
    relay_scan(c, queue, coils, 0.1)
    queue.put(Request("preset", ("m1",), 0.2))  # cool, the trip still latched in the core
    relay_scan(c, queue, coils, 0.2)
    assert c.thermal_outputs["flags"][0] & ThermalFlag.TRIP
    assert history(factory, 17) == [False, True]
    queue.put(Request("reset", ("m1",), source="modbus"))
    relay_scan(c, queue, coils, 0.3)
    assert not c.thermal_outputs["flags"][0] & ThermalFlag.TRIP
    assert history(factory, 17) == [False, True, False]
    assert events[-1][1:3] == ("reset m1", "from modbus; trips reset; released coils: lockout")
    relay_scan(c, queue, coils, 0.4)
    assert history(factory, 17) == [False, True, False]


@pytest.mark.e2e
def test_a_relay_drops_its_latched_trip_coil_when_the_trip_is_reset(tmp_path, factory):
    """The same through runtime.Relay's own scan stages (the demo, its trip coil latched)."""
    from softrelay.config import load
    from softrelay.relay.relay import Relay

    from support.configs import DEMO

    line = "  - {name: trip, pin: 17, flags: [motor1.trip], min_pulse: 0.5}\n"
    assert line in DEMO
    path = tmp_path / "relay.yaml"
    latch = ("      latch: false            # the demo restarts by itself; set true to require "
             "a reset\n")
    assert latch in DEMO
    path.write_text(DEMO.replace(line, line.replace("min_pulse: 0.5", "latched: true"))
                    .replace(latch, "      latch: true\n")
                    .replace("state/", f"{tmp_path}/").replace("port: 5020", "port: 0")
                    .replace("port: 9650", "port: 0"))
    relay = Relay(load(path), str(path), factory=factory)
    read_inputs = relay.input_map.latch

    def good_currents(core, signals, now):  # no companion: a stopped motor, measured
        read_inputs(core, signals, now)
        set_currents(core, 0.0, now=now)

    relay.input_map.latch = good_currents
    relay.start(companion=False)
    try:
        relay.commands.put(Request("preset", ("motor1",), 1.5))
        relay.loop.step()
        relay.commands.put(Request("preset", ("motor1",), 0.1))
        relay.loop.step()
        assert relay.core.thermal_outputs["flags"][0] & ThermalFlag.TRIP  # latched
        assert history(factory, 17) == [False, True]
        relay.commands.put(Request("reset", ("motor1",), source="terminal"))
        relay.loop.step()
        assert not relay.core.thermal_outputs["flags"][0] & ThermalFlag.TRIP
        assert history(factory, 17) == [False, True, False]
        assert relay.coils.state()["trip"] is False
        texts = [e.text for e in relay.events.newest(10)]
    finally:
        relay.stop()
    assert any("trips reset; released coils: trip" in t for t in texts), texts


def test_a_refused_reset_releases_nothing(factory):
    c = core()
    coils = bank([{"name": "lockout", "pin": 17, "flags": ["m1.trip"], "latched": True}],
                 factory)
    queue = CommandQueue(["m1"], release_latches=coils.release_latches)
    set_currents(c, 0.0, now=0.0)
    queue.put(Request("preset", ("m1",), 1.1))
    relay_scan(c, queue, coils, 0.1)
    queue.put(Request("reset", ("m1",)))  # theta 1.1 >= theta_reset: refused
    relay_scan(c, queue, coils, 0.2)
    assert c.thermal_outputs["flags"][0] & ThermalFlag.RESET_REJECTED
    assert history(factory, 17) == [False, True]


def test_acknowledge_releases_latched_coils_but_not_trips(factory):
    events = []
    c = core()
    coils = bank([{"name": "horn", "pin": 6, "flags": ["m1.alarm1"], "latched": True}], factory)
    queue = CommandQueue(["m1"], release_latches=coils.release_latches,
                         record=lambda *e: events.append(e))
    set_currents(c, 0.0, now=0.0)
    queue.put(Request("preset", ("m1",), 1.05))  # trips and alarms
    scan(c, queue, 0.1)
    coils.drive(c, 0.1)
    queue.put(Request("preset", ("m1",), 0.55))  # alarm 1 gone, trip still latched
    scan(c, queue, 0.2)
    coils.drive(c, 0.2)
    assert factory.pin(6).state
    queue.put(Request("acknowledge"))
    scan(c, queue, 0.3)
    coils.drive(c, 0.3)
    assert not factory.pin(6).state
    assert c.thermal_outputs["flags"][0] & ThermalFlag.TRIP
    assert "released coils: horn" in events[-1][2]


def test_bad_commands_are_refused_when_queued():
    queue = CommandQueue(["m1"])
    with pytest.raises(ValueError, match="unknown command 'rest'"):
        queue.put(Request("rest"))
    with pytest.raises(ValueError, match="no thermal point named 'm9'"):
        queue.put(Request("reset", ("m9",)))
    with pytest.raises(ValueError, match=r"outside 0\.\.10"):
        Request("preset", (), -1.0)


def test_a_gpio_reset_button_queues_a_reset_for_the_next_scan(factory):
    c = core()
    queue = CommandQueue(["m1"])
    buttons = CommandButtons([Input(name="reset", pin=5, command="reset")], queue,
                             factory=factory, bounce_time=None)
    set_currents(c, 0.0, now=0.0)
    c.thermal_state["trip_latched"] = 1
    c.thermal_state["theta"] = 0.1
    factory.pin(5).drive_low()  # pressed (pulled up: active low)
    deadline = time.monotonic() + 2.0
    while not queue._pending and time.monotonic() < deadline:
        time.sleep(0.005)
    scan(c, queue, 0.1)
    assert not c.thermal_outputs["flags"][0] & ThermalFlag.TRIP
    buttons.close()
