"""A tripped point's time to trip reads the same on every channel: 0 / "tripped" in the core,
the metrics, ``softrelay status``, the live screen and the MQTT document, also once the breaker
opened and no current flows (it read +Inf / "never" / "no trip" beside TRIP)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softrelay.config import load
from softrelay.core import ProtectionCore, ThermalFlag
from softrelay.core.times import time_to_trip, time_to_trip_text
from softrelay.image.signals import BUS, empty_signals
from softrelay.image.snapshot import STATS
from softrelay.modbus import status_client as remote_status
from softrelay.screen import render
from softrelay.telemetry.metrics import RelayCollector
from softrelay.telemetry.reading import Reading, document

from support.core import set_currents

CONFIG = load()  # the demo: motor1, motor2 (thermal), bus1


def tripped_with_the_breaker_open() -> ProtectionCore:
    """motor1 trips at 3 I_B, then its breaker opens: 0 A, theta cooling below theta_trip,
    the trip latched. motor2 runs at 1.5 I_B: a finite time to trip."""
    points = [p.settings.model_copy(update={"latch": True}) for p in CONFIG.thermal_points]
    points[1] = points[1].model_copy(update={"input_mode": "phasors"})
    core = ProtectionCore(points, [CONFIG.points[2].settings])
    t = 0.0
    while not core.thermal_outputs["flags"][0] & ThermalFlag.TRIP:
        t += 0.1
        set_currents(core, 300.0, now=t, point=0)
        set_currents(core, 75.0, now=t, point=1)
        core.scan(t, 0.1)
    for _ in range(50):
        t += 0.1
        set_currents(core, 0.0, now=t, point=0)
        set_currents(core, 75.0, now=t, point=1)
        core.scan(t, 0.1)
    out = core.thermal_outputs
    assert out["theta"][0] < points[0].theta_trip and out["flags"][0] & ThermalFlag.TRIP
    assert out["i_eq"][0] == 0.0
    return core


@pytest.fixture(scope="module")
def core() -> ProtectionCore:
    return tripped_with_the_breaker_open()


def reading(core: ProtectionCore) -> Reading:
    stats = np.zeros(1, STATS)
    stats["healthy"] = 1
    return Reading(0.0, stats[0], core.thermal_outputs.copy(), core.busbar_outputs.copy(),
                   np.zeros(len(CONFIG.outputs), np.uint8), empty_signals(len(CONFIG.signals)),
                   np.zeros(len(CONFIG.buses), BUS), 0.0)


def test_the_core_says_zero(core):
    assert core.thermal_outputs["time_to_trip"][0] == 0.0
    assert 0.0 < core.thermal_outputs["time_to_trip"][1] < math.inf


def test_the_metric_is_zero(core):
    families = {f.name: f for f in RelayCollector(CONFIG, lambda: reading(core)).collect()}
    samples = {s.labels["point"]: s.value
               for s in families["softrelay_thermal_time_to_trip_seconds"].samples}
    assert samples["motor1"] == 0.0
    assert samples["motor2"] == pytest.approx(float(core.thermal_outputs["time_to_trip"][1]))


def test_the_mqtt_document_says_zero_beside_trip(core):
    motor1 = document(CONFIG, reading(core))["points"]["motor1"]
    assert "trip" in motor1["flags"] and motor1["time_to_trip"] == 0.0


def test_softrelay_status_says_tripped(core):
    (_, _, columns, _), = [t for t in remote_status.TABLES if t[1]]
    to_trip = dict((header, show) for header, _, show in columns)["to trip"]
    rows = [{"time_to_trip": float(o["time_to_trip"]), "flags": float(o["flags"])}
            for o in core.thermal_outputs]
    assert to_trip(rows[0]) == "tripped"
    assert to_trip(rows[1]).endswith(" s")


def test_the_live_screen_says_tripped_never_no_trip(core):
    tables = {"stats": np.zeros(1, STATS), "thermal": core.thermal_outputs,
              "busbar": core.busbar_outputs, "coils": np.zeros(len(CONFIG.outputs), np.uint8)}
    lines = render(CONFIG, tables)
    motor1 = next(line for line in lines if line.strip().startswith("motor1"))
    assert "tripped" in motor1 and "TRIP" in motor1 and "no trip" not in motor1
    motor2 = next(line for line in lines if line.strip().startswith("motor2"))
    assert "trip in " in motor2


@pytest.mark.parametrize(("value", "flags", "number", "text"), [
    (math.inf, ThermalFlag.TRIP, 0.0, "tripped"),  # a reading from before the core's 0
    (math.nan, ThermalFlag.TRIP | ThermalFlag.INPUT_FAULT, 0.0, "tripped"),
    (0.0, ThermalFlag.TRIP, 0.0, "tripped"),
    (math.inf, ThermalFlag.RUNNING, math.inf, "never"),
    (math.nan, ThermalFlag.INPUT_FAULT, math.nan, "unknown"),
    (42.4, ThermalFlag.RUNNING, 42.4, "42 s"),
    (1200.0, ThermalFlag.RUNNING, 1200.0, "20 min"),
])
def test_one_reading_of_the_time_to_trip(value, flags, number, text):
    got = time_to_trip(value, int(flags))
    assert got == number or (math.isnan(got) and math.isnan(number))
    assert time_to_trip_text(value, int(flags)) == text
