"""The relay as the telemetry sees it: one consistent reading of the snapshot and input image.

``RelayView.read()`` copies one version of each shared image (seqlocks: never two scans mixed)
under a lock, so the metrics' scrape thread and the MQTT thread can both call it.
``document(reading)`` is the same reading as plain JSON-ready values, by point.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from softrelay.config.identity import config_hash
from softrelay.config.relay import RelayConfig
from softrelay.core import BusbarFlag, Quality, ThermalFlag, set_flags
from softrelay.core.quantities import QUANTITIES
from softrelay.core.times import time_to_trip
from softrelay.image.shared import Attachment, attach_all
from softrelay.image.snapshot import MODBUS_COUNTERS
from softrelay.supervision.health import causes_of


@dataclass
class Reading:
    """One scan's outputs with the input image of the same moment (copies)."""

    wall: float  #: when it was read (UTC s)
    stats: np.void  #: the snapshot's statistics row
    thermal: np.ndarray
    busbar: np.ndarray
    coils: np.ndarray
    signals: np.ndarray
    buses: np.ndarray
    age: float  #: s since the scan that published it (monotonic)


class RelayView:
    def __init__(self, config: RelayConfig, snapshot: Attachment, inputs: Attachment) -> None:
        """``snapshot``, ``inputs``: the images the scan process made, as it hands them over
        (``SharedImage.attachment()``): attached with their layouts, refused
        (``LayoutMismatchError``) when made for a configuration other than ``config``."""
        self.config = config
        self.snapshot, self.inputs = attach_all((snapshot, inputs), config_hash(config))
        self._lock = threading.Lock()

    def read(self) -> Reading:
        with self._lock:
            out = self.snapshot.read()
            inputs = self.inputs.read()
            stats = out["stats"][0].copy()
            return Reading(time.time(), stats, out["thermal"].copy(), out["busbar"].copy(),
                           out["coils"].copy(), inputs["signals"].copy(),
                           inputs["buses"].copy(), time.monotonic() - float(stats["now"]))

    def close(self) -> None:
        self.snapshot.close()
        self.inputs.close()


def _number(value: float) -> float | None:
    """JSON has no NaN or infinity: None for both (unknown / never)."""
    value = float(value)
    return value if math.isfinite(value) else None


def point_document(kind: str, row: np.void) -> dict:
    """One point's quantities (``core.quantities``) at their key paths: numbers (None for
    unknown / never), fault words as the names of the bits set (only where some are)."""
    out: dict = {}
    for q in QUANTITIES[kind]:
        *groups, key = q.path
        place = out
        for group in groups:
            place = place.setdefault(group, {})
        value = row[q.field] if q.index is None else row[q.field][q.index]
        if q.bits is not None:
            if value:
                place[key] = set_flags(value, q.bits)
        elif q.type == "float32":
            place[key] = _number(time_to_trip(value, row["flags"]) if q.zero_while_tripped
                                 else value)
        else:
            place[key] = int(value)
    return out


def document(config: RelayConfig, reading: Reading) -> dict:
    """The reading as JSON-ready values: the relay's figures, each point, signal and bus."""
    s = reading.stats
    points = {}
    for kind, names, rows, flags in (
            ("thermal", [p.name for p in config.thermal_points], reading.thermal, ThermalFlag),
            ("busbar", [p.name for p in config.busbar_points], reading.busbar, BusbarFlag)):
        for name, row in zip(names, rows, strict=True):
            points[name] = {"kind": kind} | point_document(kind, row) | {
                "flags": set_flags(row["flags"], flags)}
    return {
        "name": config.name, "time": round(reading.wall, 3), "healthy": bool(s["healthy"]),
        "supervision": causes_of(int(s["supervision"])),
        "scan": {"period": int(s["period_ns"]) * 1e-9, "scans": int(s["scans"]),
                 "overruns": int(s["overruns"]), "missed": int(s["missed"]),
                 "lateness_p99": float(s["late_p99"]) * 1e-9,
                 "execution_p99": float(s["exec_p99"]) * 1e-9, "age": round(reading.age, 3)},
        "events": int(s["events"]),
        "points": points,
        "coils": {o.name: bool(c) for o, c in zip(config.outputs, reading.coils, strict=True)},
        "signals": {sig.name: {"value": _number(row["value"]),
                               "quality": Quality(int(row["quality"])).name.lower()}
                    for sig, row in zip(config.signals, reading.signals, strict=True)},
        "buses": {b.name: {"reads": int(row["reads"]), "failures": int(row["failures"]),
                           "link": "down" if row["down"] else "up",
                           "link_downs": int(row["downs"])}
                  for b, row in zip(config.buses, reading.buses, strict=True)},
        "modbus": {k: int(s[f"modbus_{k}"]) for k in MODBUS_COUNTERS},
    }
