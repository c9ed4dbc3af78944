"""``softrelay bench``: it measures the configured relay on this machine (its real loop, I/O,
Modbus slave under load), recommends from the figures, and touches nothing of the plant's."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from softrelay.cli.bench import (
    TAIL_SCANS,
    mapped_reads,
    nice_ceiling,
    recommend,
    stage_window,
    tail,
)
from softrelay.config import load
from softrelay.core import ProtectionCore, ThermalSettings
from softrelay.modbus.regmap import RegisterMap
from softrelay.relay.stages import names
from softrelay.scan.clock import MonotonicClock
from softrelay.scan.loop import CORE_PASS, BoundStage, ScanLoop

from support.scrape import with_sections


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One short bench of the fast relay with a Modbus slave: (report, its configuration's
    state directory)."""
    tmp = tmp_path_factory.mktemp("bench")
    path = with_sections(tmp, "\nmodbus: {host: 127.0.0.1, port: 5020}\n")
    result = subprocess.run([sys.executable, "-m", "softrelay", "bench", str(path),
                             "--seconds", "0.5", "--scans", "60", "--json", "-"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "bench: the relay under Modbus load" in result.stderr  # progress on stderr
    return json.loads(result.stdout), tmp


@pytest.mark.e2e
def test_the_bench_measures_the_real_loop_io_and_slave(measured):
    report, _ = measured
    assert report["name"] == "fast" and report["period"] == 0.01
    for key in ("relay_idle", "relay_modbus_load"):
        window = report[key]
        assert 60 <= window["scans"] <= 90  # 60 scans at least, 0.5 s of 10 ms scans
        assert window["execution"]["count"] == window["scans"]  # each figure says its count
        assert 0 < window["execution"]["p50"] <= window["execution"]["p99"] \
            <= window["execution"]["max"]
    load = report["relay_modbus_load"]["modbus"]
    assert load["exceptions"] == 0 and load["answered"] > 0  # the flood reads what is served
    assert load["requests_per_second"] > 500 and load["registers_per_request"] > 20
    stages = report["stages"]
    # named by the stages themselves (through the loop's stage timer), in the scan's order
    assert tuple(stages) == names()
    assert all(s["count"] >= 30 for s in stages.values())
    plant = report["buses"]["plant"]
    assert plant["signals"] == 13 and plant["failed"] == 0 and plant["sweep"]["count"] > 10
    assert plant["fastest_poll"] == 0.02
    assert report["wake_floor"]["count"] >= 30


def test_the_stage_figures_are_named_by_the_loops_own_stages():
    """Whatever stages a loop runs, the bench's figures carry their names, through the
    loop's stage timer (nothing guessed from the callables)."""
    core = ProtectionCore([ThermalSettings(i_b=100.0, t_heat=10.0, t_cool=30.0)])
    loop = ScanLoop(core, MonotonicClock(1_000_000), [
        BoundStage("inputs in", lambda c, now: None), BoundStage(CORE_PASS, None),
        BoundStage("outputs out", lambda c, now: None)])
    figures = stage_window(SimpleNamespace(loop=loop), 0.05)
    assert tuple(figures) == ("inputs in", CORE_PASS, "outputs out")
    assert all(f["count"] >= 10 for f in figures.values())
    assert loop.stage_timer is None  # given back


@pytest.mark.e2e
def test_the_recommendation_follows_from_the_figures(measured):
    report, _ = measured
    rec = report["recommendation"]
    worst = max(report[k]["execution"]["max"] + report[k]["lateness"]["max"]
                for k in ("relay_idle", "relay_modbus_load"))  # 60 scans: the max is quoted
    assert rec["scan_period"] == max(nice_ceiling(2 * worst), 0.001)
    assert rec["scan_period"] >= 2 * worst
    assert "execution max" in rec["evidence"] and f"--scans {TAIL_SCANS}" in rec["evidence"]
    assert rec["poll"]["plant"] == report["buses"]["plant"]["shortest_poll"] \
        >= 2 * report["buses"]["plant"]["sweep"]["p99"]
    assert rec["modbus_requests_per_second"] == \
        report["relay_modbus_load"]["modbus"]["requests_per_second"]


@pytest.mark.e2e
def test_the_bench_leaves_the_plant_alone(measured):
    _, state = measured
    assert not (state / "state.json").exists()  # the thermal memory is not written
    assert not (state / "events.jsonl").exists()  # nor the event file


@pytest.mark.e2e
def test_the_text_report_says_what_to_set(tmp_path):
    path = with_sections(tmp_path, "\n")
    result = subprocess.run([sys.executable, "-m", "softrelay", "bench", str(path),
                             "--seconds", "0.3", "--scans", "30", "--json",
                             str(tmp_path / "r.json")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "scan period: shortest safe" in text and "configured 10 ms" in text
    assert "bus plant: poll no faster than" in text and "fastest configured 20 ms" in text
    assert "modbus slave" not in text  # this relay has none: nothing loaded
    assert json.loads((tmp_path / "r.json").read_text())["name"] == "fast"


@pytest.mark.parametrize(("seconds", "nice"), [
    (0.0013, 0.002), (0.002, 0.002), (0.0051, 0.01), (7.0, 10.0), (1e-4, 1e-4),
    (0.00021, 0.0005), (0.0, 0.0)])
def test_periods_are_rounded_up_to_the_1_2_5_series(seconds, nice):
    assert nice_ceiling(seconds) == pytest.approx(nice)


def test_a_period_shorter_than_the_worst_scan_allows_is_called_too_short():
    def window(execution: float, lateness: float, overruns: int = 0) -> dict:
        def figures(tail_figure: float) -> dict:
            return {"p999": tail_figure, "p99": tail_figure, "max": 9.0, "count": TAIL_SCANS}

        return {"overruns": overruns, "scans": TAIL_SCANS, "execution": figures(execution),
                "lateness": figures(lateness)}

    report = {"period": 0.002, "wake_floor": {"p99": 50e-6}, "buses": {},
              "relay_idle": window(300e-6, 200e-6)}
    rec = recommend(report)
    assert rec["scan_period"] == 0.001 and rec["scan_period_ok"]  # 2 x 500 us
    report["relay_idle"] = window(700e-6, 400e-6)
    rec = recommend(report)
    assert rec["scan_period"] == 0.005 and not rec["scan_period_ok"]  # 2 x 1.1 ms -> 5 ms
    report["period"] = 0.005
    assert recommend(report)["scan_period_ok"]
    report["relay_idle"] = window(700e-6, 400e-6, overruns=1)
    assert not recommend(report)["scan_period_ok"]  # an overrun seen is never safe


def test_a_tail_resting_on_too_few_scans_is_the_max():
    figures = {"p999": 1e-3, "max": 50e-3, "count": TAIL_SCANS - 1}
    assert tail(figures) == 50e-3  # one stall in a short window: said as the max it is
    figures["count"] = TAIL_SCANS
    assert tail(figures) == 1e-3


def test_the_flood_reads_only_what_the_map_serves():
    regmap = RegisterMap(load(None))
    mapped = {a for e in regmap.in_table("input_register")
              for a in range(e.address, e.address + e.width)}
    reads = mapped_reads(regmap)
    covered = [a for start, count in reads for a in range(start, start + count)]
    assert all(count <= 125 for _, count in reads)
    assert set(covered) == mapped and len(covered) == len(mapped)  # all of it, once
    holes = set(range(125)) - mapped  # what the old flood (0..124) read through
    assert holes and not holes & set(covered)
