"""Link supervision of the field buses: a link-down event with its reason, a link-up event.

The companion's bus workers keep each bus's link state in the input image's ``buses`` table
(``field.worker.PollSchedule``: down after a read in which every signal failed, up again at the
first good answer, a count of the times it went down and the reason of the last). This
watcher runs in the scan process, on the image the scan latched, and turns the changes into
events: ``fault bus.<name>: link down: <reason>`` and ``fault cleared bus.<name>: link up``.

Contract: one comparison of a small array per scan; Python runs per change only. A link that
went down and came back between two looks is still reported (its down count moved).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from softrelay.records.events import EventRecorder

#: one row per bus, what the register map shows of its link (``regmap.bus_entries``)
LINK = np.dtype([("up", "<u4"), ("downs", "<u4"), ("down", "<u4"), ("_pad", "<u4")])


def reason_of(row: np.void) -> str:
    """The reason a bus row gives for its last link-down, as text."""
    return bytes(row["reason"]).decode("utf-8", "replace") or "no reason given"


class LinkWatcher:
    """Link-down and link-up events of the buses ``names`` (configuration order)."""

    def __init__(self, names: Iterable[str], recorder: EventRecorder) -> None:
        self.names = list(names)
        self.recorder = recorder
        self.down = np.zeros(len(self.names), dtype=bool)
        self.downs = np.zeros(len(self.names), dtype=np.uint64)
        self.table = np.zeros(len(self.names), LINK)  #: the map's source (``LINK``)
        self.table["up"] = 1

    @property
    def names_down(self) -> list[str]:
        """The buses whose link is down now."""
        return [name for name, down in zip(self.names, self.down, strict=True) if down]

    def update(self, buses: np.ndarray, mono: float) -> bool:
        """Record the changes since the last look; returns whether any link changed."""
        down, downs = buses["down"].astype(bool), buses["downs"]
        changed = (down != self.down) | (downs != self.downs)
        if not changed.any():
            return False
        for i in np.flatnonzero(changed):
            row, source = buses[i], f"bus.{self.names[i]}"
            went_down = int(downs[i]) > int(self.downs[i])
            if went_down:
                self.recorder.record("fault", source, f"link down: {reason_of(row)}; down "
                                     f"{int(downs[i])} time(s) since start", mono=mono)
            if not down[i] and (self.down[i] or went_down):
                self.recorder.record("fault cleared", source, "link up", mono=mono)
        self.down[:] = down
        self.downs[:] = downs
        self.table["up"] = ~down
        self.table["down"] = down
        self.table["downs"] = np.minimum(downs, 2**32 - 1)
        return True
