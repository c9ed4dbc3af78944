"""The output snapshot: what one scan produced, published as one version for every reader.

Core outputs (thermal and busbar), coil states and the scan's statistics, in shared memory
under a seqlock: the Modbus slave, the terminal status and the plant read one scan's complete
snapshot, never two mixed. Publishing costs a few microseconds of copying per scan; the
statistics' percentiles are refreshed every ``stats_every`` scans.
"""

from __future__ import annotations

import numpy as np

from softrelay.config.schema import RelayConfig
from softrelay.core import ProtectionCore
from softrelay.core.layout import BUSBAR_OUTPUTS, THERMAL_OUTPUTS
from softrelay.image.shared import Layout, SharedImage
from softrelay.scan.loop import ScanStats

_HIST = ["min", "max", "mean", "p50", "p99", "p999"]
STATS = np.dtype(
    [("now", "<f8"), ("scans", "<u8"), ("overruns", "<u8"), ("missed", "<u8"),
     ("events", "<u8"), ("period_ns", "<u8")]
    + [(f"late_{k}", "<f8") for k in _HIST] + [(f"exec_{k}", "<f8") for k in _HIST]
    + [("healthy", "u1"), ("_pad", "u1", (7,))]
)


def snapshot_layout(config: RelayConfig) -> Layout:
    n_th = sum(p.kind == "thermal" for p in config.points)
    n_bb = sum(p.kind == "busbar" for p in config.points)
    return {"thermal": (THERMAL_OUTPUTS, (n_th,)), "busbar": (BUSBAR_OUTPUTS, (n_bb,)),
            "coils": (np.dtype("u1"), (len(config.outputs),)), "stats": (STATS, (1,))}


class SnapshotPublisher:
    """Scan stage (last): copy this scan's results into the shared snapshot."""

    def __init__(self, image: SharedImage, stats: ScanStats, coil_state, event_count,
                 healthy, stats_every: int = 50) -> None:
        self.image = image
        self.stats = stats
        self.coil_state = coil_state  #: () -> list[bool], coils in configuration order
        self.event_count = event_count  #: () -> int
        self.healthy = healthy  #: () -> bool
        self.stats_every = stats_every
        self._summary: dict | None = None

    def publish(self, core: ProtectionCore, now: float) -> None:
        if self._summary is None or self.stats.scans % self.stats_every == 0:
            self._summary = self.stats.summary()
        summary = self._summary
        with self.image.writing() as t:
            t["thermal"][:] = core.thermal_outputs
            t["busbar"][:] = core.busbar_outputs
            t["coils"][:] = self.coil_state()
            s = t["stats"][0]
            s["now"] = now
            s["scans"] = self.stats.scans
            s["overruns"] = self.stats.overruns
            s["missed"] = self.stats.missed
            s["events"] = self.event_count()
            s["period_ns"] = self.stats.period_ns
            for k in _HIST:
                s[f"late_{k}"] = summary["lateness"][k]
                s[f"exec_{k}"] = summary["execution"][k]
            s["healthy"] = self.healthy()
