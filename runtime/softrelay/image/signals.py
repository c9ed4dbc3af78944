"""The input image: one record per signal, and its mapping onto the core's input tables.

I/O workers write signals (value, stamp, quality); at the start of every scan the image is
latched (one consistent copy) and gathered into the core's tables: vectorised index arrays
built once from the configuration, no per-point Python.

Thermal points take the worst quality and the oldest stamp of their current (and angle)
signals. Busbar channels keep their own. A busbar current that is not good, or older than the
point's stale_limit, becomes NaN: the joint indicator is then not evaluated.
"""

from __future__ import annotations

import numpy as np

from softrelay.config.schema import RelayConfig
from softrelay.core import ProtectionCore, Quality
from softrelay.image.shared import SharedImage

SIGNAL = np.dtype([("value", "<f8"), ("stamp", "<f8"), ("quality", "u1"), ("_pad", "u1", (7,))])


def empty_signals(n: int) -> np.ndarray:
    """Signals never read: NaN, no time, stale."""
    table = np.zeros(n, SIGNAL)
    table["value"] = np.nan
    table["stamp"] = -np.inf
    table["quality"] = Quality.STALE
    return table


def signal_writer(image: SharedImage, table: str = "signals"):
    """``publish(indices, values, stamps, qualities)`` for bus workers: one seqlocked write.

    A reading that failed (IO_ERROR) updates only the quality: the last good value and its stamp
    stay, so the signal also ages towards stale.
    """

    def publish(idx: np.ndarray, values: np.ndarray, stamps: np.ndarray,
                qualities: np.ndarray) -> None:
        ok = qualities != Quality.IO_ERROR
        with image.writing() as tables:
            signals = tables[table]
            signals["value"][idx[ok]] = values[ok]
            signals["stamp"][idx[ok]] = stamps[ok]
            signals["quality"][idx] = qualities

    return publish


class InputMap:
    """Where each core input comes from in the image (indices into the signal table)."""

    def __init__(self, config: RelayConfig) -> None:
        index = {s.name: i for i, s in enumerate(config.signals)}
        thermal = [p for p in config.points if p.kind == "thermal"]
        busbar = [p for p in config.points if p.kind == "busbar"]
        self.n_signals = len(config.signals)
        self.mag = np.array([[index[n] for n in p.currents] for p in thermal],
                            dtype=np.intp).reshape(-1, 3)
        self.ang = np.array([[index[n] for n in p.angles] if p.angles else [-1, -1, -1]
                             for p in thermal], dtype=np.intp).reshape(-1, 3)
        self.has_ang = self.ang[:, 0] >= 0
        self.temp = np.array([[index[n] for n in (*p.phases, p.ambient)] for p in busbar],
                             dtype=np.intp).reshape(-1, 4)
        self.cur = np.array([[index[n] for n in p.currents] if p.currents else [-1, -1, -1]
                             for p in busbar], dtype=np.intp).reshape(-1, 3)
        self.has_cur = self.cur[:, 0] >= 0
        self.cur_stale = np.array([p.settings.stale_limit for p in busbar], dtype=float)

    def latch(self, core: ProtectionCore, signals: np.ndarray, now: float) -> None:
        """Gather one consistent copy of the signals into the core's input tables."""
        value, stamp, quality = signals["value"], signals["stamp"], signals["quality"]
        x = core.thermal_inputs
        if len(x):
            x["mag"] = value[self.mag]
            q = quality[self.mag].max(axis=1)
            t = stamp[self.mag].min(axis=1)
            if self.has_ang.any():
                ang = np.where(self.has_ang[:, None], value[self.ang], 0.0)
                x["ang"] = ang
                q = np.where(self.has_ang, np.maximum(q, quality[self.ang].max(axis=1)), q)
                t = np.where(self.has_ang, np.minimum(t, stamp[self.ang].min(axis=1)), t)
            x["quality"] = q
            x["stamp"] = t
        b = core.busbar_inputs
        if len(b):
            b["temp"] = value[self.temp]
            b["stamp"] = stamp[self.temp]
            b["quality"] = quality[self.temp]
            if self.has_cur.any():
                cur = value[self.cur]
                usable = (quality[self.cur] == Quality.GOOD) & (
                    now - stamp[self.cur] <= self.cur_stale[:, None])
                b["current"] = np.where(self.has_cur[:, None] & usable, cur, np.nan)
