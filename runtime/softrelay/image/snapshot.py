"""The output snapshot: what one scan produced, published as one version for every reader.

Core outputs (thermal and busbar), coil states and the scan's statistics, in shared memory
under a seqlock: the Modbus slave, the terminal status and the plant read one scan's complete
snapshot, never two mixed. Publishing costs a few microseconds of copying per scan; the
statistics' percentiles are refreshed every ``stats_every`` scans.

Only ``SnapshotPublisher`` writes the snapshot, into a segment created zeroed, so its seqlock
sequence is 0 until the first scan's results are published (``published``): the Modbus slaves
answer reads with exception 06 (server device busy) until then, never an image of zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from softrelay.config.relay import RelayConfig
from softrelay.core import ProtectionCore
from softrelay.core.layout import BUSBAR_OUTPUTS, THERMAL_OUTPUTS
from softrelay.image.shared import Layout, SharedImage
from softrelay.modbus.event_window import EVENT_WINDOW, WINDOW, EventWindow
from softrelay.modbus.register_image import RELAY, compiled_encoder, image_layout
from softrelay.modbus.regmap import TABLES, RegisterMap, firmware_version
from softrelay.scan.loop import ScanStats
from softrelay.supervision.health import CAUSES

_HIST = ["min", "max", "mean", "p50", "p99", "p999"]
#: upper bounds (s) of the lateness and execution histograms' buckets in the snapshot (the
#: metrics' buckets; +Inf is the count)
TIME_BUCKETS = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3,
                25e-3, 50e-3, 100e-3)
_BUCKETS_NS = [round(b * 1e9) for b in TIME_BUCKETS]
SELF_TEST = 1 << CAUSES.index("self_test")  #: its bit of the self-supervision word
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


#: the register image's tables in the snapshot: "mb_<table>" (the whole map)
IMAGE_PREFIX = "mb_"


def group_prefix(unit: int) -> str:
    """The snapshot prefix of the image a unit id's group of points has: "mb<unit>_"."""
    return f"mb{unit}_"


def published(image: SharedImage) -> bool:
    """Whether a scan has published the snapshot yet (its seqlock sequence is no longer 0; it
    never returns to 0). Ask before reading: a reader that saw True then gets a version at
    least as new as the first scan's."""
    return bool(image.region[:8].view(np.uint64)[0])


def register_image(tables: dict[str, np.ndarray], prefix: str = IMAGE_PREFIX
                   ) -> dict[str, np.ndarray]:
    """One register image (its four tables by name) out of the snapshot's tables."""
    return {table: tables[prefix + table] for table in TABLES}


def register_maps(config: RelayConfig) -> dict[str, RegisterMap]:
    """Each register image the snapshot carries, by table prefix: the whole map ("mb_") and
    one per unit id that shows a group of points ("mb<unit>_")."""
    whole = RegisterMap(config)
    maps = {IMAGE_PREFIX: whole}
    for unit, names in (config.modbus.groups.items() if config.modbus else ()):
        maps[group_prefix(unit)] = RegisterMap(config, list(names), hashed=whole.config_hash)
    return maps


def snapshot_layout(config: RelayConfig, maps: dict[str, RegisterMap] | None = None
                    ) -> Layout:
    """The snapshot's tables; ``maps``: ``register_maps(config)`` when the caller has them
    (a map of 1 000 points takes a fifth of a second to build)."""
    n_th = len(config.thermal_points)
    n_bb = len(config.busbar_points)
    layout = {"thermal": (THERMAL_OUTPUTS, (n_th,)), "busbar": (BUSBAR_OUTPUTS, (n_bb,)),
              "coils": (np.dtype("u1"), (len(config.outputs),)), "stats": (STATS, (1,))}
    for prefix, regmap in (maps or register_maps(config)).items():
        for table, spec in image_layout(regmap).items():
            layout[prefix + table] = spec
    return layout


class RegisterPublisher:
    """The Modbus register image of each scan, written into the snapshot's ``mb_*`` tables in
    the same version as the outputs (compiled coder: about 1 us for the demo, 60 us for 1 000
    points). The settings' registers are recoded only when ``settings_version()`` moves."""

    def __init__(self, regmap: RegisterMap, settings_version: Callable[[], int] = lambda: 0,
                 unlocked: Callable[[], bool] = lambda: False,
                 events: EventWindow | None = None, prefix: str = IMAGE_PREFIX,
                 tables: dict[str, np.ndarray] | None = None) -> None:
        """``tables``: further source tables of the map by name (kept in place by their
        owners, e.g. the buses' ``links``), beside the core's and the relay's."""
        self.regmap = regmap
        self.tables = dict(tables or {})
        self.prefix = prefix
        self.settings_version = settings_version
        self.unlocked = unlocked
        self.events = events
        self._no_events = np.zeros(WINDOW, EVENT_WINDOW)
        self._settings_seen: int | None = None
        self.relay = np.zeros(1, RELAY)
        major, minor, patch = firmware_version()
        for name, value in (("map_version", regmap.version), ("firmware_major", major),
                            ("firmware_minor", minor), ("firmware_patch", patch),
                            ("config_hash", regmap.config_hash), ("points", regmap.points)):
            self.relay[name] = value
        self._encoder = None

    def fill(self, core: ProtectionCore, tables: dict[str, np.ndarray]) -> None:
        if self._encoder is None:  # bound once: the core and the staging tables stay put
            sources = {"thermal_outputs": core.thermal_outputs,
                       "thermal_inputs": core.thermal_inputs,
                       "thermal_state": core.thermal_state,
                       "thermal_settings": core.thermal_settings,
                       "busbar_outputs": core.busbar_outputs,
                       "busbar_settings": core.busbar_settings, "relay": self.relay,
                       "events": self.events.table if self.events else self._no_events,
                       **self.tables}
            image = register_image(tables, self.prefix)
            self._encoder = compiled_encoder(self.regmap, sources, image,
                                             lambda table: not table.endswith("_settings"))
            self._settings = compiled_encoder(self.regmap, sources, image,
                                              lambda table: table.endswith("_settings"))
        if self.events is not None:
            self.relay["event_cursor"] = self.events.cursor
            self.events.refresh()
        self._encoder.fill()
        version = self.settings_version()
        if version != self._settings_seen:
            self._settings.fill()
            self._settings_seen = version


class SnapshotPublisher:
    """Scan stage (last): copy this scan's results into the shared snapshot."""

    def __init__(self, image: SharedImage, stats: ScanStats, coil_state, event_count,
                 healthy, stats_every: int = 50,
                 registers: Sequence[RegisterPublisher] = (),
                 modbus_counters: Callable[[], dict[str, int]] | None = None,
                 supervision: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0),
                 access: Callable[[], dict[str, int]] | None = None) -> None:
        """``modbus_counters()``: the slave's counters by ``MODBUS_COUNTERS`` name, read with
        the statistics (every ``stats_every`` scans); ``supervision()``: (the self-supervision
        word, points whose measurement is lost, buses whose link is down), every scan."""
        self.supervision = supervision
        self.access = access  #: () -> ACCESS_FIGURES by name, read with the statistics
        self._access: dict[str, int] = {}
        self.image = image
        self.modbus_counters = modbus_counters
        self.registers = list(registers)
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
        with self.image.writing() as t:
            t["thermal"][:] = core.thermal_outputs
            t["busbar"][:] = core.busbar_outputs
            t["coils"][:] = self.coil_state()
            s = t["stats"][0]
            s["now"] = now
            s["scans"] = self.stats.scans + 1  # this scan's number (counted after it ends)
            s["overruns"] = self.stats.overruns
            s["missed"] = self.stats.missed
            s["events"] = self.event_count()
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
            s["healthy"] = self.healthy()
            word, lost, down = self.supervision()
            s["supervision"], s["points_lost"], s["links_down"] = word, lost, down
            if not self.registers:
                return
            shared = (("scans", s["scans"]), ("heartbeat", s["scans"] % 65536),
                      ("healthy", s["healthy"]), ("overruns", self.stats.overruns),
                      ("missed", self.stats.missed), ("events", s["events"]),
                      ("period", self.stats.period_ns * 1e-6),
                      ("lateness_p99", summary["lateness"]["p99"] * 1e-3),  # ns -> us
                      ("lateness_max", summary["lateness"]["max"] * 1e-3),
                      ("execution_p99", summary["execution"]["p99"] * 1e-3),
                      ("execution_max", summary["execution"]["max"] * 1e-3),
                      ("supervision", word), ("points_lost", lost), ("links_down", down),
                      ("measurement_lost", lost), ("link_down", down),
                      ("self_test_failed", word & SELF_TEST), *self._access.items())
            for registers in self.registers:  # the whole map's image, each group's
                r = registers.relay
                for name, value in shared:
                    r[name] = value
                r["unlocked"] = registers.unlocked()
                registers.fill(core, t)
