"""The Prometheus exposition endpoint: the relay's state read at each scrape.

Names follow Prometheus's conventions (base units: seconds, celsius, amperes; ``_total`` for
counters; ratios 0..1). Each scrape reads one consistent snapshot; nothing is computed between
scrapes. Counters restart when the DCS clears the statistics (coil ``relay.clear_statistics``)
or the relay restarts, which Prometheus's ``rate()`` treats as a counter reset.

Every series carries the point, signal, bus or flag it is about as a label; a time to trip of
"never" is +Inf, "unknown" is NaN, as the map says, and a tripped point's is 0 (as everywhere,
``core.times``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)

from softrelay.config.relay import RelayConfig
from softrelay.core import CHANNEL_NAMES, BusbarFlag, ThermalFlag, flag_bits
from softrelay.core.quantities import FAMILIES, QUANTITIES
from softrelay.core.times import time_to_trip
from softrelay.image.snapshot import TIME_BUCKETS
from softrelay.modbus.regmap import firmware_version
from softrelay.supervision.health import CAUSES, causes_of
from softrelay.telemetry.reading import Reading

PREFIX = "softrelay"


def _gauge(name: str, doc: str, labels: list[str] | None = None,
           unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels or [], unit=unit)


def _single(kind: str, name: str, doc: str, value: float, unit: str = ""):
    """A metric with one unlabelled sample; ``kind``: "gauge" or "counter"."""
    family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return family(f"{PREFIX}_{name}", doc, value=float(value), unit=unit)


def _histogram(name: str, doc: str, stats, key: str) -> HistogramMetricFamily:
    buckets = [(f"{bound:g}", float(n)) for bound, n in
               zip(TIME_BUCKETS, stats[f"{key}_buckets"], strict=True)]
    buckets.append(("+Inf", float(stats[f"{key}_count"])))
    return HistogramMetricFamily(f"{PREFIX}_{name}", doc, buckets=buckets,
                                 sum_value=float(stats[f"{key}_sum"]), unit="seconds")


class RelayCollector:
    """A prometheus_client collector: ``read()`` gives the reading of this scrape; ``extra()``
    the telemetry process's own figures as (name, help, value, kind) with kind "gauge" or
    "counter"."""

    def __init__(self, config: RelayConfig, read: Callable[[], Reading],
                 extra: Callable[[], list[tuple[str, str, float, str]]] = list) -> None:
        self.config = config
        self.read = read
        self.extra = extra
        self.thermal = [p.name for p in config.thermal_points]
        self.busbar = [p.name for p in config.busbar_points]

    def collect(self) -> Iterator:
        r = self.read()
        s = r.stats
        major, minor, patch = firmware_version()
        info = InfoMetricFamily(f"{PREFIX}_relay", "the relay's name and firmware",
                                labels=["name", "firmware"])
        info.add_metric([self.config.name, f"{major}.{minor}.{patch}"], {})
        yield info
        yield _single("gauge", "healthy", "1 while the self-supervision (healthy) contact "
                      "is made", s["healthy"])
        cause = _gauge("supervision_cause", "1 while the self-supervision cause is active "
                       "(whether or not the healthy policy drops the contact for it)", ["cause"])
        active = causes_of(int(s["supervision"]))
        for name in CAUSES:
            cause.add_metric([name], float(name in active))
        yield cause
        yield _single("gauge", "points_measurement_lost", "protected points whose "
                      "measurement is lost now", s["points_lost"])
        yield _single("gauge", "snapshot_age", "time since the scan that published these "
                      "figures (grows when the scan stalls)", max(r.age, 0.0), "seconds")
        yield _single("gauge", "scan_period", "configured scan period",
                      int(s["period_ns"]) * 1e-9, "seconds")
        for name, doc, value in (
                ("scans", "scans run since start", s["scans"]),
                ("scan_overruns", "scans that found their deadline already past", s["overruns"]),
                ("scan_missed_deadlines", "deadlines skipped by overruns", s["missed"]),
                ("events", "events recorded", s["events"])):
            yield _single("counter", name, doc, value)
        yield _histogram("scan_lateness", "wake-up lateness of the scan behind its deadline",
                         s, "late")
        yield _histogram("scan_execution", "time from wake-up to the end of the scan's work",
                         s, "exec")
        yield from self._thermal(r)
        yield from self._busbar(r)
        yield from self._io(r)
        yield from self._modbus(r)
        for name, doc, value, kind in self.extra():
            yield _single(kind, name, doc, value)

    def _points(self, kind: str, names: list[str], rows) -> dict[str, GaugeMetricFamily]:
        """The kind's quantity families (``core.quantities``), one sample per point and
        quantity, in the families' order."""
        families = {f.name: _gauge(f.name, f.help, ["point", f.label] if f.label else
                                   ["point"], unit=f.unit) for f in FAMILIES[kind]}
        for name, row in zip(names, rows, strict=True):
            for q in QUANTITIES[kind]:
                if q.family is None:
                    continue
                value = row[q.field] if q.index is None else row[q.field][q.index]
                if q.zero_while_tripped:
                    value = time_to_trip(value, row["flags"])
                labels = [name, q.label] if q.family.label else [name]
                families[q.family.name].add_metric(labels, float(value) / q.divisor)
        return families

    @staticmethod
    def _flags(kind: str, names: list[str], rows, flags) -> GaugeMetricFamily:
        family = _gauge(f"{kind}_flag", "1 while the flag is set", ["point", "flag"])
        for name, row in zip(names, rows, strict=True):
            word = int(row["flags"])
            for flag, bit in flag_bits(flags):
                family.add_metric([name, flag], float(bool(word & bit)))
        return family

    def _thermal(self, r: Reading) -> Iterator:
        yield from self._points("thermal", self.thermal, r.thermal).values()
        yield self._flags("thermal", self.thermal, r.thermal, ThermalFlag)

    def _busbar(self, r: Reading) -> Iterator:
        families = self._points("busbar", self.busbar, r.busbar)
        fault = families.pop("busbar_channel_fault")
        yield from families.values()
        yield self._flags("busbar", self.busbar, r.busbar, BusbarFlag)
        good = _gauge("busbar_channel_good", "1 while the channel is used, 0 while a sensor "
                      "fault excludes it", ["point", "channel"])
        for name, row in zip(self.busbar, r.busbar, strict=True):
            for channel, bits in zip(CHANNEL_NAMES, row["fault"], strict=True):
                good.add_metric([name, channel], float(bits == 0))
        yield good
        yield fault

    def _io(self, r: Reading) -> Iterator:
        value = _gauge("signal_value", "the input image's value (scaled; last good value "
                       "while the quality is not good)", ["signal", "unit"])
        quality = _gauge("signal_quality", "0 good, 1 stale, 2 out of range, 3 I/O error",
                         ["signal"])
        for sig, row in zip(self.config.signals, r.signals, strict=True):
            value.add_metric([sig.name, sig.unit or ""], float(row["value"]))
            quality.add_metric([sig.name], float(row["quality"]))
        reads = CounterMetricFamily(f"{PREFIX}_bus_reads", "reads of the bus's devices",
                                    labels=["bus"])
        errors = CounterMetricFamily(f"{PREFIX}_bus_read_errors", "reads in which every "
                                     "signal failed (I/O error)", labels=["bus"])
        row_errors = _gauge("bus_consecutive_errors", "failed reads in a row now (back-off "
                            "while > 0)", ["bus"])
        link_up = _gauge("bus_link_up", "1 while the bus's link answers (0 after a read in "
                         "which every signal failed)", ["bus"])
        downs = CounterMetricFamily(f"{PREFIX}_bus_link_downs", "times the bus's link went "
                                    "down", labels=["bus"])
        for bus, row in zip(self.config.buses, r.buses, strict=True):
            reads.add_metric([bus.name], float(row["reads"]))
            errors.add_metric([bus.name], float(row["failures"]))
            row_errors.add_metric([bus.name], float(row["consecutive"]))
            link_up.add_metric([bus.name], float(not row["down"]))
            downs.add_metric([bus.name], float(row["downs"]))
        coils = _gauge("coil_operated", "1 while the output coil is operated", ["coil"])
        for output, state in zip(self.config.outputs, r.coils, strict=True):
            coils.add_metric([output.name], float(state))
        yield from (value, quality, reads, errors, row_errors, link_up, downs, coils)

    def _modbus(self, r: Reading) -> Iterator:
        if self.config.modbus is None:
            return
        s = r.stats
        for key, name, doc in (
                ("requests", "modbus_requests", "requests answered by the Modbus/TCP slave"),
                ("exceptions", "modbus_exceptions", "of which exception responses"),
                ("accepted", "modbus_connections_accepted", "connections accepted"),
                ("refused", "modbus_connections_refused", "connections refused (allow list, "
                 "connection limit)"),
                ("dropped", "modbus_connections_dropped", "connections dropped (idle, half "
                 "frames, errors)")):
            yield _single("counter", name, doc, s[f"modbus_{key}"])
        yield _single("gauge", "modbus_connections", "connections open now", s["modbus_open"])
        yield from self._access(r)

    def _access(self, r: Reading) -> Iterator:
        """The access levels (modbus.authority): wrong codes, lockouts, refused writes."""
        s = r.stats
        for key, name, doc in (
                ("wrong_codes", "access_wrong_codes", "access codes refused as wrong"),
                ("lockouts", "access_lockouts", "lockouts of a peer after wrong codes"),
                ("refused_writes", "access_refused_writes", "Modbus writes refused for want "
                 "of an access level, or in local")):
            yield _single("counter", name, doc, s[f"access_{key}"])
        yield _single("gauge", "access_sessions", "sessions holding an access level now",
                      s["access_sessions"])
        yield _single("gauge", "access_local", "1 while the local/remote switch is in local",
                      s["access_local"])


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (a thread of prometheus_client's); ``port`` 0 takes a
    free one (``self.port`` says which)."""

    def __init__(self, collector: RelayCollector, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        try:
            self.server, self.thread = start_http_server(port, addr=host,
                                                         registry=self.registry)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot bind the metrics endpoint to {host}:{port}: "
                                     f"{exc.strerror}") from None
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)

