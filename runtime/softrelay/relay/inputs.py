"""The scan's two input stages: the latch (the input image into the core) and the judgement
of lost measurements (which points cannot protect for want of good inputs).

Neither blocks the scan: the latch gives up after half a period and keeps the inputs the core
had; the judgement is one vectorised test per point kind per scan, names only on a change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from softrelay import _shm
from softrelay.core import BusbarFlag, ProtectionCore, ThermalFlag
from softrelay.image.shared import SharedImage
from softrelay.image.signals import InputMap
from softrelay.supervision.health import Supervision
from softrelay.supervision.links import LinkWatcher

log = logging.getLogger("softrelay")


class InputLatch:
    """The ``latch`` stage. A companion that holds the image mid-write for longer than half a
    period (stopped, or starved) costs this scan its new inputs, not the scan: the core keeps
    the inputs it had (their stamps age, so a lasting hold ends in measurement lost by the
    points' own policy), with an event when it begins and when the image is latched again.
    Each latch also gives the buses' counters to the link watcher (a link down or up again is
    the self-supervision's ``link_down``)."""

    def __init__(self, image: SharedImage, input_map: InputMap, links: LinkWatcher,
                 supervision: Supervision, record: Callable[..., object],
                 period_s: float) -> None:
        self.image = image
        self.input_map = input_map
        self.links = links
        self.supervision = supervision
        self.record = record
        #: the latch's give-up: half a period (seqlock.h's 100 ms at the most)
        self.give_up_ms = min(_shm.GIVE_UP_MS, period_s * 500.0)
        self.missed = 0  #: scans in a row that kept the inputs they had

    def __call__(self, core: ProtectionCore, now: float) -> None:
        try:
            tables = self.image.read(self.give_up_ms)
        except TimeoutError:
            self.missed += 1
            if self.missed == 1:
                text = (f"no whole version within {self.give_up_ms:g} ms (the I/O "
                        "process holds it mid-write): the scan keeps the inputs it had")
                log.warning("input image: %s", text)
                self.record("fault", "input image", text, mono=now)
            return
        if self.missed:
            text = f"latched again after {self.missed} scan(s) on the inputs it had"
            log.warning("input image: %s", text)
            self.record("fault cleared", "input image", text, mono=now)
            self.missed = 0
        self.input_map.latch(core, tables, now)
        if self.links.update(tables["buses"], now):
            down = self.links.names_down
            self.supervision.set("link_down", bool(down), ", ".join(down))


class LostMeasurements:
    """The ``supervision`` stage: measurement lost on any point, to the self-supervision
    (``measurement_lost``, naming the points); ``figures()`` is what the snapshot and the map
    show of the supervision."""

    def __init__(self, thermal_names: Sequence[str], busbar_names: Sequence[str],
                 supervision: Supervision, links: LinkWatcher) -> None:
        self.thermal_names = list(thermal_names)
        self.busbar_names = list(busbar_names)
        self.supervision = supervision
        self.links = links
        self.thermal = np.zeros(len(self.thermal_names), dtype=bool)
        self.busbar = np.zeros(len(self.busbar_names), dtype=bool)

    def __call__(self, core: ProtectionCore, now: float) -> None:
        thermal = (core.thermal_outputs["flags"] & ThermalFlag.MEASUREMENT_LOST) != 0
        busbar = (core.busbar_outputs["flags"] & BusbarFlag.MEASUREMENT_LOST) != 0
        if np.array_equal(thermal, self.thermal) and np.array_equal(busbar, self.busbar):
            return
        self.thermal[:], self.busbar[:] = thermal, busbar
        lost = ([n for n, x in zip(self.thermal_names, thermal, strict=True) if x]
                + [n for n, x in zip(self.busbar_names, busbar, strict=True) if x])
        self.supervision.set("measurement_lost", bool(lost), ", ".join(lost))

    def figures(self) -> tuple[int, int, int]:
        """(self-supervision word, points whose measurement is lost, buses down)."""
        lost = int(self.thermal.sum() + self.busbar.sum())
        return self.supervision.word, lost, int(self.links.down.sum())
