"""systemd's STATUS line while the relay runs (``service.notify.status_line``)."""

from __future__ import annotations

from softrelay.scan.loop import ScanStats
from softrelay.service.notify import status_line


def test_the_status_line_says_health_scan_figures_trips_and_clients():
    stats = ScanStats(10_000_000)
    stats.scans, stats.overruns = 1234, 2
    assert status_line(False, stats, ["motor1", "motor2"], None) == (
        "NOT healthy; scan 10 ms, 1234 scans, lateness p99 0 us, 2 overruns; "
        "TRIP motor1, motor2")
    assert status_line(True, stats, [], 3).endswith("; no trip; modbus 3 client(s)")
