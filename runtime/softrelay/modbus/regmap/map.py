"""``RegisterMap``: every entry of one configuration's map, with lookups by name and by address.

The map is the relay's own entries (``relay_entries``), each field bus's link, then each
protected point's block, extension area and summary line (``point_entries``), in that order;
every address comes from the layout (``layout``), none from that order. A configuration with
more points or buses than the layout has room for is refused (``ValueError``), and two entries
over one address are a generator error caught at construction.
"""

from __future__ import annotations

from softrelay.config.identity import config_hash
from softrelay.config.relay import RelayConfig
from softrelay.modbus.event_window import event_sources
from softrelay.modbus.regmap import export
from softrelay.modbus.regmap.layout import (
    MAP_VERSION,
    MAX_BUSES,
    MAX_POINTS,
    SUMMARY,
    WORD_ORDER,
    Entry,
)
from softrelay.modbus.regmap.point_entries import (
    busbar_entries,
    summary_entries,
    thermal_entries,
)
from softrelay.modbus.regmap.relay_entries import bus_entries, relay_entries


class RegisterMap:
    """Every entry of one configuration's map, with lookups by name and by address."""

    def __init__(self, config: RelayConfig, points: list[str] | None = None, *,
                 hashed: int | None = None) -> None:
        """The map of every point, or of ``points`` only (a unit id's group: laid out from the
        first block in the order given, each still reading its own rows of the core).
        ``hashed``: ``config_hash(config)`` when the caller has it already."""
        self.version = MAP_VERSION
        self.word_order = WORD_ORDER
        self.config_hash = config_hash(config) if hashed is None else hashed
        self.relay = config.name
        self.event_sources = event_sources(config)
        entries = relay_entries()
        if len(config.points) > MAX_POINTS:
            raise ValueError(f"{len(config.points)} points: the register map holds at most "
                             f"{MAX_POINTS}")
        if len(config.buses) > MAX_BUSES:
            raise ValueError(f"{len(config.buses)} buses: the register map holds at most "
                             f"{MAX_BUSES}")
        for k, bus in enumerate(config.buses):
            entries += bus_entries(bus.name, k)
        counts, row_of = {"thermal": 0, "busbar": 0}, {}
        for point in config.points:  # each point's row in its kind's tables of the core
            row_of[point.name] = counts[point.kind]
            counts[point.kind] += 1
        by_name = {p.name: p for p in config.points}
        shown = [by_name[name] for name in points] if points is not None else config.points
        for k, point in enumerate(shown):  # point k: block, extension area and summary
            row = row_of[point.name]
            if point.kind == "thermal":
                entries += thermal_entries(point.name, k, row)
            else:
                entries += busbar_entries(point.name, k, row)
            entries += summary_entries(point.name, point.kind, SUMMARY + 4 * k, row)
        self.entries = entries
        self.points = len(shown)
        self.point_names = [p.name for p in shown]  #: in block order
        self._by_name = {(e.name, e.table): e for e in entries}
        self._check()

    def _check(self) -> None:
        """No two entries share an address in a table (a generator error, caught here)."""
        used: dict[tuple[str, int], str] = {}
        for e in self.entries:
            for a in range(e.address, e.address + e.width):
                key = (e.table, a)
                if key in used:
                    raise AssertionError(f"{e.name} overlaps {used[key]} at {e.table} {a}")
                used[key] = e.name

    def size(self, table: str) -> int:
        """One past the highest address used in ``table``."""
        return max((e.address + e.width for e in self.entries if e.table == table), default=0)

    def get(self, name: str, table: str | None = None) -> Entry:
        """The entry of ``name`` (in ``table`` when a name is in two tables)."""
        if table is not None:
            return self._by_name[(name, table)]
        found = [e for e in self.entries if e.name == name]
        if len(found) != 1:
            raise KeyError(f"{name!r}: {len(found)} entries (give the table)")
        return found[0]

    def in_table(self, table: str) -> list[Entry]:
        return sorted((e for e in self.entries if e.table == table), key=lambda e: e.address)

    # ------------------------------------------------------------ exports (``export``)

    def header(self) -> dict:
        """The export's header: relay, versions, hash, word order, addressing."""
        return export.header(self)

    def to_json(self) -> str:
        return export.to_json(self)

    def to_csv(self) -> str:
        return export.to_csv(self)

    def to_markdown(self) -> str:
        return export.to_markdown(self)
