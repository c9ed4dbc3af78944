"""The register image: one scan's values, coded into the words and bits of the register map.

Built after every scan in the scan process and published with the output snapshot: every
response of the slave is then a copy of words from one scan's image, so a multi-register read
can never mix two scans.

Tables: ``input_register`` and ``holding_register`` as native uint16 words (the server sends
them big-endian), ``discrete_input`` and ``coil`` as one uint8 (0/1) per address. Unmapped
addresses hold 0 (the server answers exception 02 for them: it asks the map, not the image).
Coils and write-only registers read 0; ``preset_theta`` reads NaN.

Codings: float32 is the value rounded to the nearest binary32 (NaN stays NaN); uint32 is the
value truncated modulo 2^32 (NaN, infinities and magnitudes of 2^63 or more: 0); uint16 is
truncated and clamped to 0..65535 (NaN: 0); a bit is bit ``b`` of the source word; bool is 1
for a finite non-zero value.

``RegisterImage`` is the readable specification (NumPy, one step per field). The scan uses the
compiled ``softrelay._regimage.ImageEncoder`` on the rows ``plan`` makes from the same map:
a few microseconds per scan where the NumPy one takes hundreds; tests prove both equal.

The images ride in the output snapshot (``image.snapshot``) as a table provider handed in by
whoever assembles the relay: ``register_maps`` gives each image's map by table prefix,
``register_layout`` their tables for ``snapshot_layout(config, extra)``, ``RegisterPublisher``
fills one image every scan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from softrelay.config.relay import RelayConfig
from softrelay.core import ProtectionCore
from softrelay.image.shared import Layout
from softrelay.image.snapshot import Figures
from softrelay.modbus.event_window import EVENT_WINDOW, WINDOW, EventWindow
from softrelay.modbus.regmap import GLOBAL_READINGS, TABLES, RegisterMap, firmware_version
from softrelay.supervision.health import CAUSES

if TYPE_CHECKING:
    from softrelay._regimage import ImageEncoder

WORD_TABLES = ("input_register", "holding_register")
#: the relay's global quantities, one row, filled by the publisher every scan
RELAY = np.dtype([(q, "<f8") for q in dict.fromkeys(
    [*(q for q, *_ in GLOBAL_READINGS), "event_cursor"])])


def image_layout(regmap: RegisterMap) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Tables of the register image, sized to the map."""
    return {table: (np.dtype("<u2") if table in WORD_TABLES else np.dtype("u1"),
                    (max(regmap.size(table), 1),)) for table in TABLES}


def empty_image(regmap: RegisterMap) -> dict[str, np.ndarray]:
    return {name: np.zeros(shape, dtype) for name, (dtype, shape) in
            image_layout(regmap).items()}


def words32(values: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """High and low words of 32-bit values (float32 IEEE 754, or uint32 modulo 2^32)."""
    values = np.asarray(values, dtype=np.float64)
    if kind == "float32":
        with np.errstate(over="ignore"):  # beyond binary32: infinity, as the C cast gives
            raw = values.astype(np.float32).view(np.uint32)
    else:
        usable = np.isfinite(values) & (np.abs(values) < 2.0**63)
        raw = (np.where(usable, values, 0.0).astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    return (raw >> 16).astype(np.uint16), (raw & 0xFFFF).astype(np.uint16)


def put(words: np.ndarray, addresses: np.ndarray, kind: str, values: np.ndarray,
        bits: np.ndarray) -> None:
    """Write ``values`` of ``kind`` at ``addresses`` of one image table."""
    values = np.asarray(values)
    if kind == "bool" and (bits >= 0).any():
        words[addresses] = (values.astype(np.uint64) >> bits.astype(np.uint64)) & 1
    elif kind == "bool":
        v = values.astype(np.float64)
        words[addresses] = np.isfinite(v) & (v != 0)
    elif kind in ("float32", "uint32"):
        high, low = words32(values, kind)
        words[addresses] = high
        words[addresses + 1] = low
    else:  # uint16
        v = np.nan_to_num(values.astype(np.float64), nan=0.0)
        words[addresses] = np.clip(v, 0, 65535).astype(np.uint16)


def _constant(entry) -> float:
    return np.nan if entry.type == "float32" else 0.0


class RegisterImage:
    """Codes tables of values into the image: ``fill(sources, image)``.

    ``sources``: name -> table: the core's ``thermal_outputs``, ``thermal_inputs``,
    ``thermal_state``, ``thermal_settings``, ``busbar_outputs``, ``busbar_settings``,
    ``relay`` (one row of ``RELAY``) and ``events`` (the rows of ``event_window.EVENT_WINDOW``).
    """

    def __init__(self, regmap: RegisterMap) -> None:
        self.regmap = regmap
        groups: dict[tuple, list[tuple[int, int, int]]] = defaultdict(list)
        self.constants = [(e.table, e.address, e.type, _constant(e)) for e in regmap.entries
                          if e.source[0] == "command"]
        for e in regmap.entries:
            if e.source[0] == "command":
                continue
            table, field, row, *index = e.source
            bit = index.pop() if e.type == "bool" and table != "relay" else -1
            groups[(e.table, e.type, table, field, tuple(index))].append((row, e.address, bit))
        self.groups = [(key, np.array(rows, dtype=np.intp).reshape(-1, 3))
                       for key, rows in groups.items()]

    def fill(self, sources: dict[str, np.ndarray], image: dict[str, np.ndarray]) -> None:
        for (target, kind, table, field, index), rows in self.groups:
            values = sources[table][field][rows[:, 0]]
            if index:
                values = values[(slice(None), *index)]
            put(image[target], rows[:, 1], kind, values, rows[:, 2])
        for target, address, kind, value in self.constants:
            put(image[target], np.array([address]), kind, np.array([value]),
                np.array([-1]))


# ---------------------------------------------------------------- the compiled encoder's plan

def plan(regmap: RegisterMap, sources: dict[str, np.ndarray],
         only: Callable[[str], bool] = lambda table: True) -> tuple[list, np.ndarray]:
    """(source buffers, plan rows) for ``softrelay._regimage.ImageEncoder``: one row per word
    pair, word or bit of the map, reading the same source values ``RegisterImage`` reads;
    ``only``: the source tables to include (constants go with the tables of ``only("")``)."""
    from softrelay._regimage import CONSTANTS as C

    names = list(sources)
    buffers = [np.ascontiguousarray(sources[n]) for n in names]
    for name, buffer in zip(names, buffers, strict=True):
        if buffer is not sources[name] and not np.shares_memory(buffer, sources[name]):
            raise ValueError(f"source {name!r} is not contiguous: the encoder would read a copy")
    target = {"input_register": C["IR"], "holding_register": C["HR"],
              "discrete_input": C["DI"], "coil": C["CO"]}
    out_kind = {"float32": C["T_F32"], "uint32": C["T_U32"], "uint16": C["T_U16"]}
    in_kind = {"<f8": C["S_F8"], "<u4": C["S_U4"], "<i4": C["S_I4"], "|u1": C["S_U1"]}
    rows = []
    for e in regmap.entries:
        if not only("" if e.source[0] == "command" else e.source[0]):
            continue
        if e.source[0] == "command":
            skind = C["S_NAN"] if _constant(e) != _constant(e) else C["S_ZERO"]
            tkind = out_kind.get(e.type, C["T_BOOL"])
            rows.append((target[e.table], e.address, 0, 0, skind, tkind, 0))
            continue
        table, field, row, *index = e.source
        bit = index.pop() if e.type == "bool" and table != "relay" else -1
        array = sources[table]
        fields = array.dtype.fields
        assert fields is not None, f"{table}: a source table is a record array"
        ftype, offset = fields[field][:2]
        base = ftype.base
        if index:
            offset += int(np.ravel_multi_index(index, ftype.shape)) * base.itemsize
        offset += row * array.dtype.itemsize
        tkind = (out_kind[e.type] if e.type != "bool" else
                 C["T_BIT"] if bit >= 0 else C["T_BOOL"])
        rows.append((target[e.table], e.address, names.index(table), offset,
                     in_kind[base.str],
                     tkind, max(bit, 0)))
    return buffers, np.array(rows, dtype=np.int64).reshape(-1, 7)


def compiled_encoder(regmap: RegisterMap, sources: dict[str, np.ndarray],
                     image: dict[str, np.ndarray],
                     only: Callable[[str], bool] = lambda table: True) -> ImageEncoder:
    """A bound ``ImageEncoder``: ``.fill()`` recodes ``image`` from ``sources`` (those
    ``only`` accepts)."""
    from softrelay._regimage import ImageEncoder

    buffers, rows = plan(regmap, sources, only)
    return ImageEncoder(buffers, rows, image["input_register"], image["holding_register"],
                        image["discrete_input"], image["coil"])


# ---------------------------------------------------------------- in the output snapshot

SELF_TEST = 1 << CAUSES.index("self_test")  #: its bit of the self-supervision word
#: the register image's tables in the snapshot: "mb_<table>" (the whole map)
IMAGE_PREFIX = "mb_"


def group_prefix(unit: int) -> str:
    """The snapshot prefix of the image a unit id's group of points has: "mb<unit>_"."""
    return f"mb{unit}_"


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


def register_layout(maps: dict[str, RegisterMap]) -> Layout:
    """The register images' tables in the snapshot (``snapshot_layout``'s ``extra``), from
    ``register_maps(config)`` (a map of 1 000 points takes a fifth of a second to build)."""
    return {prefix + table: spec for prefix, regmap in maps.items()
            for table, spec in image_layout(regmap).items()}


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
        self._encoder: ImageEncoder | None = None  #: bound at the first fill
        self._settings: ImageEncoder | None = None

    def fill(self, core: ProtectionCore, tables: dict[str, np.ndarray],
             figures: Figures) -> None:
        """Scan stage (in the snapshot's publish): this scan's image into ``tables``."""
        self._relay_figures(figures)
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
        if version != self._settings_seen and self._settings is not None:
            self._settings.fill()
            self._settings_seen = version

    def _relay_figures(self, figures: Figures) -> None:
        """The global block's figures of this scan."""
        f, summary = figures, figures.summary
        shared = (("scans", f.scans), ("heartbeat", f.scans % 65536),
                  ("healthy", f.healthy), ("overruns", f.overruns),
                  ("missed", f.missed), ("events", f.events),
                  ("period", figures.period_ns * 1e-6),
                  ("lateness_p99", summary["lateness"]["p99"] * 1e-3),  # ns -> us
                  ("lateness_max", summary["lateness"]["max"] * 1e-3),
                  ("execution_p99", summary["execution"]["p99"] * 1e-3),
                  ("execution_max", summary["execution"]["max"] * 1e-3),
                  ("supervision", f.supervision), ("points_lost", f.points_lost),
                  ("links_down", f.links_down), ("measurement_lost", f.points_lost),
                  ("link_down", f.links_down),
                  ("self_test_failed", f.supervision & SELF_TEST), *f.access.items())
        r = self.relay
        for name, value in shared:
            r[name] = value
        r["unlocked"] = self.unlocked()
