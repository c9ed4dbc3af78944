"""Relay coils through gpiozero's MockFactory, and the commands that act on latches."""

from __future__ import annotations

import time

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.config.schema import BusbarPoint, Input, Output, ThermalPoint
from softrelay.core import BusbarFlag, BusbarSettings, ProtectionCore, ThermalFlag, ThermalSettings
from softrelay.outputs.buttons import CommandButtons
from softrelay.outputs.coils import CoilBank
from softrelay.outputs.commands import CommandQueue, Request

from helpers import set_currents

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


def test_a_coil_is_an_or_of_flags_across_points(factory):
    c = core()
    coils = bank([{"name": "alarm", "pin": 27, "flags": ["m1.alarm2", "b1.critical"]}], factory)
    for thermal, busbar in [(0, 0), (ThermalFlag.ALARM2, 0), (0, BusbarFlag.CRITICAL),
                            (ThermalFlag.ALARM2, BusbarFlag.CRITICAL), (ThermalFlag.ALARM1, 0)]:
        set_flags(c, thermal, busbar)
        coils.drive(c, 1.0)
    factory.pin(27).assert_states([False, True, False])


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
    factory.pin(23).assert_states([False, True, False, True])


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
    factory.pin(6).assert_states([False, True, False])


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
    factory.pin(12).assert_states([False, True, False, True, False])


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
        ("preset m1", "from terminal; theta = 1.1"),
        ("reset all", "from modbus; refused while theta >= theta_reset: m1"),
        ("preset m1", "from local; theta = 0.2"),
        ("reset all", "from gpio:reset; trips reset"),
    ]


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
