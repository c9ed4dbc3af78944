"""The input image: one record per signal, and its mapping onto the core's input tables.

I/O workers write signals (value, stamp, quality); at the start of every scan the image is
latched (one consistent copy) and gathered into the core's tables: vectorised index arrays
built once from the configuration, no per-point Python.

A window signal (an ADC's burst of the three phase currents) has its record (value: the
largest phase RMS, for display; its stamp and quality) and a row of the ``windows`` table, both
written in the same version; a thermal point in samples mode takes the window into the core's
window table, with the record's stamp and quality.

A quality is one of ``core.Quality``: good, stale, out of range, I/O error, or sentinel (the
field device answered its own "no reading" value, e.g. the gateway's -32768; the value is NaN).
Thermal points take the worst quality and the oldest stamp of their current (and angle)
signals (any quality but good is an input fault). Busbar channels keep their own. A busbar
current that is not good, or older than the point's stale_limit, becomes NaN: the joint
indicator is then not evaluated.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from softrelay.config.points import ThermalPoint, window_signals_of
from softrelay.config.relay import RelayConfig
from softrelay.core import ProtectionCore, Quality
from softrelay.image.shared import SharedImage

SIGNAL = np.dtype([("value", "<f8"), ("stamp", "<f8"), ("quality", "u1"), ("_pad", "u1", (7,))])
#: per bus, configuration order: its reads, the reads that failed outright, the failures in a
#: row now (the I/O workers' counters, for the metrics), how often its link went down, whether
#: it is down now and why it went down last (UTF-8, cut to fit)
REASON_BYTES = 183
BUS = np.dtype([("reads", "<u8"), ("failures", "<u8"), ("consecutive", "<u8"),
                ("downs", "<u8"), ("down", "u1"), ("reason", f"S{REASON_BYTES}")])


def window_rows(config: RelayConfig) -> dict[int, int]:
    """Signal index -> its row of the windows table, for the signals that are windows."""
    index = {s.name: i for i, s in enumerate(config.signals)}
    return {index[name]: row for row, name in enumerate(window_signals_of(config))}


def input_layout(config: RelayConfig) -> dict:
    """The input image's tables: the signals, the sample windows, the buses' counters."""
    return {"signals": (SIGNAL, (len(config.signals),)),
            "buses": (BUS, (len(config.buses),)),
            "windows": (np.dtype("<f8"), (len(window_rows(config)), 3,
                                          config.sampling.window_length))}


def empty_signals(n: int) -> np.ndarray:
    """Signals never read: NaN, no time, stale."""
    table = np.zeros(n, SIGNAL)
    table["value"] = np.nan
    table["stamp"] = -np.inf
    table["quality"] = Quality.STALE
    return table


def signal_writer(image: SharedImage, rows: dict[int, int] | None = None):
    """``publish(indices, values, stamps, qualities, windows)`` for bus workers: one seqlocked
    write. ``windows``: signal index -> its (3, S) samples; ``rows`` places them.

    A reading that failed (IO_ERROR) updates only the quality: the last good value and its stamp
    stay, so the signal also ages towards stale.
    """
    rows = rows or {}

    def publish(idx: np.ndarray, values: np.ndarray, stamps: np.ndarray,
                qualities: np.ndarray, windows: dict[int, np.ndarray] | None = None) -> None:
        ok = qualities != Quality.IO_ERROR
        with image.writing() as tables:
            signals = tables["signals"]
            signals["value"][idx[ok]] = values[ok]
            signals["stamp"][idx[ok]] = stamps[ok]
            signals["quality"][idx] = qualities
            for index, samples in (windows or {}).items():
                tables["windows"][rows[index]] = samples

    return publish


class BusCounters(Protocol):
    """A bus's read counters and link state (``field.worker.PollSchedule`` keeps them)."""

    reads: int
    failures: int
    consecutive_failures: int
    downs: int
    down: bool
    reason: str


def bus_counter_writer(image: SharedImage, schedules: dict[int, BusCounters]):
    """``publish()`` copies each bus's read counters into the image's ``buses`` table;
    ``schedules``: bus row -> its ``PollSchedule``. Counters only: a reader may see them a
    moment behind the signals."""
    rows = np.array(list(schedules), dtype=np.intp)
    found = list(schedules.values())

    def publish() -> None:
        counts = np.array([(s.reads, s.failures, s.consecutive_failures, s.downs, s.down)
                           for s in found], dtype=np.uint64).reshape(-1, 5)
        reasons = [s.reason.encode()[:REASON_BYTES] for s in found]
        with image.writing() as tables:
            buses = tables["buses"]
            buses["reads"][rows] = counts[:, 0]
            buses["failures"][rows] = counts[:, 1]
            buses["consecutive"][rows] = counts[:, 2]
            buses["downs"][rows] = counts[:, 3]
            buses["down"][rows] = counts[:, 4]
            buses["reason"][rows] = reasons

    return publish


def _magnitude_rows(point: ThermalPoint, index: dict[str, int]) -> list[int]:
    """The signal rows of a thermal point's three magnitudes: its currents', or its sample
    window's three times (the configuration gives a point one or the other)."""
    if point.currents:
        return [index[n] for n in point.currents]
    assert point.samples is not None, f"{point.name}: neither currents nor samples"
    return [index[point.samples]] * 3


class InputMap:
    """Where each core input comes from in the image (indices into the signal table)."""

    def __init__(self, config: RelayConfig) -> None:
        index = {s.name: i for i, s in enumerate(config.signals)}
        thermal = list(config.thermal_points)
        busbar = list(config.busbar_points)
        self.n_signals = len(config.signals)
        # a sampled point's "magnitudes" are its window signal's record (largest RMS): its
        # stamp and quality are the window's
        self.mag = np.array([_magnitude_rows(p, index) for p in thermal],
                            dtype=np.intp).reshape(-1, 3)
        rows = window_rows(config)
        self.sampled = np.array([k for k, p in enumerate(thermal) if p.samples], dtype=np.intp)
        self.window_row = np.array([rows[index[p.samples]] for p in thermal if p.samples],
                                   dtype=np.intp)
        #: phases converted in turn by one ADC (see core.layout): an MCP3208 interleaves 3
        self.interleave = np.array([3 if p.samples else 0 for p in thermal], dtype=np.uint8)
        self.ang = np.array([[index[n] for n in p.angles] if p.angles else [-1, -1, -1]
                             for p in thermal], dtype=np.intp).reshape(-1, 3)
        self.has_ang = self.ang[:, 0] >= 0
        self.temp = np.array([[index[n] for n in (*p.phases, p.ambient)] for p in busbar],
                             dtype=np.intp).reshape(-1, 4)
        self.cur = np.array([[index[n] for n in p.currents] if p.currents else [-1, -1, -1]
                             for p in busbar], dtype=np.intp).reshape(-1, 3)
        self.has_cur = self.cur[:, 0] >= 0
        self.cur_stale = np.array([p.settings.stale_limit for p in busbar], dtype=float)

    def latch(self, core: ProtectionCore, tables: dict[str, np.ndarray], now: float) -> None:
        """Gather one consistent copy of the image (``tables``: signals, windows) into the
        core's input tables."""
        signals = tables["signals"]
        value, stamp, quality = signals["value"], signals["stamp"], signals["quality"]
        x = core.thermal_inputs
        if len(x):
            if len(self.sampled):
                core.window[self.sampled] = tables["windows"][self.window_row]
                x["interleave"] = self.interleave
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
