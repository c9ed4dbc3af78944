"""The Prometheus endpoint: a real relay (companion, plant, Modbus slave, telemetry process),
scraped over HTTP on 127.0.0.1 and parsed with prometheus_client's own parser."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from softrelay._timing import Histogram
from softrelay.config import load
from softrelay.core import ThermalFlag
from softrelay.image.snapshot import TIME_BUCKETS
from softrelay.relay.relay import Relay

from support.relays import Driver, fast_config, running
from support.scrape import TELEMETRY, scrape, with_sections

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not


@pytest.fixture
def relay(tmp_path):
    with running(with_sections(tmp_path, TELEMETRY)) as relay:
        yield relay


def test_a_scrape_shows_what_the_relay_does(relay):
    drive = Driver(relay)
    drive.until(lambda: drive.thermal() & ThermalFlag.TRIP, 30.0, "a trip")
    with socket.create_connection(("127.0.0.1", relay.slave.port)) as dcs:
        dcs.sendall(bytes.fromhex("000100000006" "01" "03" "ffff0001"))  # unmapped: 02
        assert dcs.recv(64)[7:] == b"\x83\x02"
    drive.until(lambda: relay.loop.stats.scans % 50 == 1, 2.0, "the statistics' refresh")
    m = scrape(relay.telemetry_ports["metrics"])

    # the test drives the scan: the scrape shows the last scan's outputs exactly
    out = relay.core.thermal_outputs[0]
    theta = m["softrelay_thermal_theta"][(("point", "motor1"),)]
    assert theta == float(out["theta"]) > 1.1  # tripped at 1.2, cooling once the breaker opens
    assert m["softrelay_thermal_flag"][(("flag", "trip"), ("point", "motor1"))] == 1.0
    # 0 while tripped, as the map says: also once the breaker opened and no current flows
    # (it read +Inf, "never", beside the trip flag)
    ttt = m["softrelay_thermal_time_to_trip_seconds"][(("point", "motor1"),)]
    assert ttt == float(out["time_to_trip"]) == 0.0
    assert m["softrelay_coil_operated"][(("coil", "trip"),)] == 1.0
    assert m["softrelay_healthy"][()] == 1.0
    assert m["softrelay_relay_info"][(("firmware", m_firmware(m)), ("name", "fast"))] == 1.0
    temps = m["softrelay_busbar_temperature_celsius"]
    assert 20.0 < temps[(("channel", "ambient"), ("point", "bus1"))] < 40.0
    assert m["softrelay_busbar_rise_celsius"][(("phase", "c"), ("point", "bus1"))] > 0.0

    # the scan's histograms: cumulative, +Inf is the count, as the scan recorded them
    scans = m["softrelay_scans_total"][()]
    assert scans > 100
    for name in ("softrelay_scan_lateness_seconds", "softrelay_scan_execution_seconds"):
        buckets = m[f"{name}_bucket"]
        counts = [buckets[(("le", f"{b:g}"),)] for b in TIME_BUCKETS] + [
            buckets[(("le", "+Inf"),)]]
        assert counts == sorted(counts)
        assert counts[-1] == m[f"{name}_count"][()] > 100
        assert 0 < m[f"{name}_sum"][()] < counts[-1] * 0.01  # every scan well under 10 ms

    # I/O: the plant bus read many times, its signals good; Modbus requests and exceptions
    assert m["softrelay_bus_reads_total"][(("bus", "plant"),)] > 50
    assert m["softrelay_signal_quality"][(("signal", "m1.ia"),)] == 0.0
    assert m["softrelay_modbus_requests_total"][()] >= 1
    assert m["softrelay_modbus_exceptions_total"][()] >= 1
    assert 0.0 <= m["softrelay_snapshot_age_seconds"][()] < 5.0


def m_firmware(m) -> str:
    (labels,) = m["softrelay_relay_info"]
    return dict(labels)["firmware"]


def test_a_failed_sensor_shows_in_the_metrics(relay):
    drive = Driver(relay)  # the plan NACKs the ambient sensor from 6 s to 8 s
    drive.until(lambda: relay.core.busbar_outputs["fault"][0][3] != 0, 30.0, "the fault")
    drive.until(lambda: relay.loop.stats.scans % 50 == 1, 2.0, "the statistics' refresh")
    m = scrape(relay.telemetry_ports["metrics"])
    assert m["softrelay_busbar_channel_good"][(("channel", "ambient"), ("point", "bus1"))] == 0
    assert m["softrelay_busbar_channel_good"][(("channel", "a"), ("point", "bus1"))] == 1
    assert m["softrelay_busbar_flag"][(("flag", "ambient_fault"), ("point", "bus1"))] == 1
    assert m["softrelay_busbar_flag"][(("flag", "critical"), ("point", "bus1"))] == 0
    assert m["softrelay_signal_quality"][(("signal", "b1.tamb"),)] in (1.0, 3.0)
    assert m["softrelay_bus_read_errors_total"][(("bus", "plant"),)] >= 0  # present
    assert math.isnan(m["softrelay_busbar_temperature_celsius"][
        (("channel", "ambient"), ("point", "bus1"))])


def test_metrics_are_off_unless_configured(tmp_path):
    with running(fast_config(tmp_path), companion=False) as relay:
        assert relay.telemetry_ports == {} and relay.helpers.telemetry is None


def test_a_port_in_use_stops_the_relay_from_starting_with_the_reason(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    path = with_sections(tmp_path, f"\nmetrics: {{host: 127.0.0.1, port: {port}}}\n")
    relay = Relay(load(path), str(path), factory=MockFactory())
    try:
        with pytest.raises(RuntimeError, match=f"metrics endpoint to 127.0.0.1:{port}"):
            relay.start(companion=False)
    finally:
        relay.stop()
        taken.close()


@pytest.mark.parametrize("seed", range(5))
def test_the_histograms_cumulative_buckets_bracket_the_exact_counts(seed):
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=11.0, sigma=1.8, size=5000).astype(np.int64)
    h = Histogram()
    for v in values:
        h.record(int(v))
    bounds = [round(b * 1e9) for b in TIME_BUCKETS]
    counts = h.cumulative(bounds)
    for bound, count in zip(bounds, counts, strict=True):
        assert np.sum(values <= bound / 1.016) <= count <= np.sum(values <= bound), bound
    assert h.sum == pytest.approx(values.sum())
