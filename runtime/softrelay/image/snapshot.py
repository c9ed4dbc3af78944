"""The output snapshot: what one scan produced, published as one version for every reader.

Core outputs (thermal and busbar), coil states and the scan's statistics, in shared memory
under a seqlock: the Modbus slave, the terminal status and the plant read one scan's complete
snapshot, never two mixed. Publishing costs a few microseconds of copying per scan; the
statistics' percentiles are refreshed every ``stats_every`` scans.

Further tables ride in the same version, from *table providers* handed in by whoever
assembles the relay (the image knows none of them): their tables' layout is ``extra`` to
``snapshot_layout``, and each provider's ``fill`` writes its tables at every publish, from the
core and this scan's figures (``Figures``). The Modbus register images are such a provider
(``modbus.register_image.RegisterPublisher``); every process attaching to the snapshot passes
the same ``extra`` (the layout's fingerprint refuses another).

Only ``SnapshotPublisher`` writes the snapshot, into a segment created zeroed, so its seqlock
sequence is 0 until the first scan's results are published (``published``): the Modbus slaves
answer reads with exception 06 (server device busy) until then, never an image of zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from softrelay.config.relay import RelayConfig
from softrelay.core import ProtectionCore
from softrelay.core.layout import BUSBAR_OUTPUTS, THERMAL_OUTPUTS
from softrelay.image.shared import Layout, SharedImage
from softrelay.scan.loop import ScanStats

_HIST = ["min", "max", "mean", "p50", "p99", "p999"]
#: upper bounds (s) of the lateness and execution histograms' buckets in the snapshot (the
#: metrics' buckets; +Inf is the count)
TIME_BUCKETS = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3,
                25e-3, 50e-3, 100e-3)
_BUCKETS_NS = [round(b * 1e9) for b in TIME_BUCKETS]
#: the Modbus/TCP slave's counters (all 0 without a slave)
MODBUS_COUNTERS = ("requests", "exceptions", "accepted", "refused", "dropped", "open")
#: the access levels' figures (modbus.authority; all 0 without a slave), in the map's words
ACCESS_FIGURES = ("wrong_codes", "lockouts", "refused_writes", "sessions", "local")
STATS = np.dtype(
    [("now", "<f8"), ("scans", "<u8"), ("overruns", "<u8"), ("missed", "<u8"),
     ("events", "<u8"), ("period_ns", "<u8")]
    + [(f"late_{k}", "<f8") for k in _HIST] + [(f"exec_{k}", "<f8") for k in _HIST]
    + [(f"{h}_{k}", t, s) for h in ("late", "exec")
       for k, t, s in (("buckets", "<u8", (len(TIME_BUCKETS),)), ("count", "<u8", ()),
                       ("sum", "<f8", ()))]
    + [(f"modbus_{k}", "<u8") for k in MODBUS_COUNTERS]
    + [("healthy", "u1"), ("_pad", "u1"), ("supervision", "<u2"), ("points_lost", "<u2"),
       ("links_down", "<u2")]
    + [(f"access_{k}", "<u8") for k in ACCESS_FIGURES]
)


def published(image: SharedImage) -> bool:
    """Whether a scan has published the snapshot yet (its seqlock sequence is no longer 0; it
    never returns to 0). Ask before reading: a reader that saw True then gets a version at
    least as new as the first scan's."""
    return bool(image.region[:8].view(np.uint64)[0])


def snapshot_layout(config: RelayConfig, extra: Layout | None = None) -> Layout:
    """The snapshot's tables: the core's outputs, the coils, the statistics, then ``extra``
    (the table providers' tables, e.g. ``modbus.register_image.register_layout``)."""
    layout = {"thermal": (THERMAL_OUTPUTS, (len(config.thermal_points),)),
              "busbar": (BUSBAR_OUTPUTS, (len(config.busbar_points),)),
              "coils": (np.dtype("u1"), (len(config.outputs),)), "stats": (STATS, (1,))}
    clash = sorted(set(layout) & set(extra or {}))
    if clash:
        raise ValueError(f"snapshot tables provided twice: {clash}")
    return layout | dict(extra or {})


@dataclass(frozen=True)
class Figures:
    """This scan's figures, as the snapshot's statistics row has them, for the providers: as
    Python values (reading a field back from the row, a NumPy record, costs about a
    microsecond, and a provider reads a score of them every scan)."""

    scans: int  #: this scan's number (counted after it ends)
    healthy: bool
    events: int  #: events recorded so far
    supervision: int  #: the supervision word (``supervision.health`` causes)
    points_lost: int  #: points whose measurement is lost
    links_down: int  #: field links down
    summary: dict  #: ``ScanStats.summary()`` (lateness, execution: ns)
    overruns: int
    missed: int
    period_ns: int
    access: dict[str, int]  #: ``ACCESS_FIGURES`` by name (empty without a slave)


class TableProvider(Protocol):
    """Fills its tables of the snapshot (in ``tables``, the version being written) for one
    scan; it must not block and must write every scan what it shows."""

    def fill(self, core: ProtectionCore, tables: dict[str, np.ndarray],
             figures: Figures) -> None: ...


class SnapshotPublisher:
    """Scan stage (last): copy this scan's results into the shared snapshot."""

    def __init__(self, image: SharedImage, stats: ScanStats, coil_state, event_count,
                 healthy, stats_every: int = 50,
                 providers: Sequence[TableProvider] = (),
                 modbus_counters: Callable[[], dict[str, int]] | None = None,
                 supervision: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0),
                 access: Callable[[], dict[str, int]] | None = None) -> None:
        """``modbus_counters()``: the slave's counters by ``MODBUS_COUNTERS`` name, read with
        the statistics (every ``stats_every`` scans); ``supervision()``: (the self-supervision
        word, points whose measurement is lost, buses whose link is down), every scan;
        ``providers``: the further tables' (see the module), filled in order every scan."""
        self.supervision = supervision
        self.access = access  #: () -> ACCESS_FIGURES by name, read with the statistics
        self._access: dict[str, int] = {}
        self.image = image
        self.modbus_counters = modbus_counters
        self.providers = list(providers)
        self.stats = stats
        self.coil_state = coil_state  #: () -> list[bool], coils in configuration order
        self.event_count = event_count  #: () -> int
        self.healthy = healthy  #: () -> bool
        self.stats_every = stats_every
        self._summary: dict | None = None
        self._histograms: dict[str, tuple[list[int], int, float]] = {}
        self._modbus: dict[str, int] = {}
        self._cleared = 0

    def _refresh(self) -> None:
        """The statistics' figures that take more than copying: percentiles, histogram
        buckets, the Modbus counters."""
        self._summary = self.stats.summary()
        for key, hist in (("late", self.stats.lateness), ("exec", self.stats.execution)):
            self._histograms[key] = (hist.cumulative(_BUCKETS_NS), hist.count, hist.sum)
        if self.modbus_counters is not None:
            self._modbus = self.modbus_counters()
        if self.access is not None:
            self._access = self.access()
        self._cleared = self.stats.cleared

    def publish(self, core: ProtectionCore, now: float) -> None:
        if (self._summary is None or self.stats.scans % self.stats_every == 0
                or self.stats.cleared != self._cleared):  # cleared: shown at once
            self._refresh()
        summary = self._summary
        assert summary is not None  # refreshed just above on the first scan
        with self.image.writing() as t:
            t["thermal"][:] = core.thermal_outputs
            t["busbar"][:] = core.busbar_outputs
            t["coils"][:] = self.coil_state()
            s = t["stats"][0]
            scans = self.stats.scans + 1  # this scan's number (counted after it ends)
            events = self.event_count()
            s["now"] = now
            s["scans"] = scans
            s["overruns"] = self.stats.overruns
            s["missed"] = self.stats.missed
            s["events"] = events
            s["period_ns"] = self.stats.period_ns
            for k in _HIST:
                s[f"late_{k}"] = summary["lateness"][k]
                s[f"exec_{k}"] = summary["execution"][k]
            for key, (buckets, count, total) in self._histograms.items():
                s[f"{key}_buckets"] = buckets
                s[f"{key}_count"] = count
                s[f"{key}_sum"] = total * 1e-9  # ns -> s
            for key, value in self._modbus.items():
                s[f"modbus_{key}"] = value
            for key, value in self._access.items():
                s[f"access_{key}"] = value
            healthy = bool(self.healthy())
            s["healthy"] = healthy
            word, lost, down = self.supervision()
            s["supervision"], s["points_lost"], s["links_down"] = word, lost, down
            figures = Figures(scans, healthy, events, word, lost, down, summary,
                              self.stats.overruns, self.stats.missed, self.stats.period_ns,
                              self._access)
            for provider in self.providers:
                provider.fill(core, t, figures)
