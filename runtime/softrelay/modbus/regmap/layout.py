"""The register map's layout: where every entry sits, versioned. Addresses are committed here,
in explicit offset tables, never derived from an order.

Layout (every address 0-based, as sent on the wire; the 6-digit Modicon reference is
``table digit`` followed by address + 1):

- a global block at 0..99 of each table: identity (map version, firmware version, a hash of the
  configuration), scan counters and timing, health, the events counter; the unlock register and
  whole-relay commands (``relay_entries``);
- a status summary from 100 of the input and of the holding registers: per point (point k at
  100 + 4 k) its main value (theta, or a busbar's largest rise) and its flag word, so one read
  of 100 registers gives 25 points (and masters that read only holding registers, as many do,
  see it too);
- one block of ``BLOCK`` (48) addresses per protected point from 4 300, in the configuration's
  order (point k at 4 300 + 48 k in every table);
- one extension area of ``EXTENSION_BLOCK`` (10) addresses per point after the last possible
  block, from ``EXTENSION`` = 4 300 + 48 x 1 050 = 54 700 (point k at 54 700 + 10 k in every
  table; the last ends at 65 200, within the 65 536 addresses): where a point's new quantities
  go once its block is full, so they are added without moving anything;
- the field buses' links after the last extension area (``BUS_FIRST``, map version 2).

Adding a point at the end moves nothing that was there.

Every per-point quantity has an explicit offset in one committed table, ``OFFSETS`` (in its
block) or ``EXTENSION_OFFSETS`` (in its extension area), by kind of point and table; the flag
bits' discrete inputs are at the block's base + the bit. Neither the settings models' field
order nor the order of the entry builders' lists places anything: reordering a model moves no
address, and a quantity without an offset is an error at import naming it (``place``, and
``point_entries.check_layout``). A new setting takes a free offset of its block (the thermal
block's holding registers are free from 34, the busbar's from 46) or, when it does not fit, of
its extension area, and the map version goes up.

32-bit values are two registers, high word first (``WORD_ORDER`` "big", ABCD).

Map version 1. An address, once given, keeps its meaning in every later version: entries are
only added. ``MAP_VERSION`` (input register 0) changes when an entry is added, moved, retyped,
rescaled, given another unit or access, or an event code changes; a description fix keeps the
version (what a DCS reads at every address is unchanged). The demo's map is committed as
``tests/golden/regmap_demo.v<version>.json`` and compared exactly; regenerate it after a
deliberate change with ``PYTHONPATH=runtime python tests/golden_map.py`` (it refuses anything
beyond descriptions without a new version).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAP_VERSION = 3
WORD_ORDER = "big"  #: 32-bit values: high word first
SUMMARY = 100  #: the status summary (4 registers a point), input and holding registers
FIRST_POINT = 4300  #: the first point's block starts here in every table
BLOCK = 48  #: addresses per point in every table
#: 1 050: the summary's room (4 200 registers); the point blocks would allow 1 275
MAX_POINTS = min((FIRST_POINT - SUMMARY) // 4, (65536 - FIRST_POINT) // BLOCK)
EXTENSION = FIRST_POINT + BLOCK * MAX_POINTS  #: 54 700: the first point's extension area
EXTENSION_BLOCK = 10  #: addresses per point in the extension area of every table
#: map version 2: the field buses' links after the last extension block (bus k: input
#: registers 65 200 + 4 k, discrete input 65 200 + k)
BUS_FIRST = EXTENSION + EXTENSION_BLOCK * MAX_POINTS
BUS_BLOCK = 4
MAX_BUSES = (65536 - BUS_FIRST) // BUS_BLOCK
if EXTENSION + EXTENSION_BLOCK * MAX_POINTS > 65536:
    raise AssertionError("the extension areas do not fit in the 65 536 addresses of a table")
TABLES = ("coil", "discrete_input", "input_register", "holding_register")
REFERENCE_DIGIT = {"coil": "0", "discrete_input": "1", "input_register": "3",
                   "holding_register": "4"}
WIDTH = {"bool": 1, "uint16": 1, "int16": 1, "uint32": 2, "float32": 2}


@dataclass(frozen=True)
class Entry:
    """One value of the map."""

    name: str  #: '<point>.<quantity>' or 'relay.<quantity>'
    table: str  #: one of TABLES
    address: int  #: 0-based, as on the wire
    type: str  #: bool, uint16, int16, uint32, float32
    access: str  #: R, W (write-only command: reads 0), RW, RW-unlocked
    description: str
    unit: str = ""
    scale: float = 1.0  #: engineering value = raw x scale
    #: where the value comes from (the encoder's business; not exported)
    source: tuple = field(default=(), compare=False, repr=False)

    @property
    def width(self) -> int:
        return WIDTH[self.type]

    @property
    def reference(self) -> str:
        """The 6-digit Modicon form: 300001 for input register 0."""
        return f"{REFERENCE_DIGIT[self.table]}{self.address + 1:05d}"

    def exported(self) -> dict:
        return {"name": self.name, "table": self.table, "address": self.address,
                "reference": self.reference, "width": self.width, "type": self.type,
                "scale": self.scale, "unit": self.unit, "access": self.access,
                "description": self.description}


#: Where each per-point quantity sits: offset in the point's block (FIRST_POINT + BLOCK k), by
#: kind of point and table. The only source of a per-point address (flag bits excepted: their
#: discrete inputs are at the block's base + the bit). Once given, an offset never changes.
OFFSETS: dict[str, dict[str, dict[str, int]]] = {
    "thermal": {
        "input_register": {
            "theta": 0, "capacity_used": 2, "time_to_trip": 4, "time_to_start": 6, "i_eq": 8,
            "i1": 10, "i2": 12, "i_max": 14, "flags": 16, "quality": 18, "trip_count": 19,
            "start_count": 21,
        },
        "coil": {"reset": 0, "acknowledge": 1},
        "holding_register": {
            "preset_theta": 0, "i_b": 2, "t_heat": 4, "t_cool": 6, "k2": 8, "kst": 10,
            "start_current": 12, "start_time_max": 14, "theta_trip": 16, "theta_al1": 18,
            "theta_al2": 20, "theta_inhibit": 22, "theta_initial": 24, "theta_reset": 26,
            "dropout_ratio": 28, "stale_limit": 30, "input_mode": 32, "latch": 33,
            # map version 2
            "input_loss_delay": 34, "input_loss_hold": 36, "input_loss": 38,
        },
    },
    "busbar": {
        "input_register": {
            "level_a": 0, "level_b": 2, "level_c": 4, "level_ambient": 6, "rate_a": 8,
            "rate_b": 10, "rate_c": 12, "rise_a": 14, "rise_b": 16, "rise_c": 18,
            "joint_index_a": 20, "joint_index_b": 22, "joint_index_c": 24, "max_rise": 26,
            "phase_delta": 28, "flags": 30, "fault_a": 32, "fault_b": 33, "fault_c": 34,
            "fault_ambient": 35, "imbalance_pair": 36, "hottest_phase": 37, "joint_phase": 38,
        },
        "coil": {},
        "holding_register": {
            "warning_delta": 0, "critical_delta": 2, "imbalance_max": 4, "rate_limit": 6,
            "hyst_delta": 8, "hyst_rate": 10, "pickup_warning": 12, "pickup_critical": 14,
            "pickup_imbalance": 16, "pickup_rate": 18, "pickup_joint": 20, "valid_min": 22,
            "valid_max": 24, "sentinel": 26, "stale_limit": 28, "kalman_r": 30,
            "kalman_q": 32, "erratic_gate": 34, "erratic_limit": 36, "joint_ratio": 38,
            "joint_min_current": 40, "joint_balance": 42, "joint_min_excess": 44,
        },
    },
}
#: The same for the quantities that did not fit their block: offset in the point's extension
#: area (EXTENSION + EXTENSION_BLOCK k). Empty in map version 1.
EXTENSION_OFFSETS: dict[str, dict[str, dict[str, int]]] = {
    "thermal": {"input_register": {}, "coil": {}, "holding_register": {}},
    "busbar": {"input_register": {}, "coil": {}, "holding_register": {
        # map version 2 (the block's 46..47 would hold one of these four, not all)
        "input_loss_delay": 0, "ambient_fallback": 2, "warning_abs": 4, "critical_abs": 6}},
}


class LayoutError(ValueError):
    """The offset tables do not place the map's per-point quantities (a generator error)."""


def place(kind: str, table: str, quantity: str, k: int) -> int:
    """The address of ``quantity`` of the point in block ``k``, from the offset tables."""
    block = OFFSETS[kind][table].get(quantity)
    extension = EXTENSION_OFFSETS[kind][table].get(quantity)
    if block is not None and extension is not None:
        raise LayoutError(f"{kind} {table} {quantity!r} has an offset in OFFSETS and in "
                          "EXTENSION_OFFSETS: give it one")
    if block is not None:
        return FIRST_POINT + BLOCK * k + block
    if extension is not None:
        return EXTENSION + EXTENSION_BLOCK * k + extension
    raise LayoutError(f"{kind} {table} {quantity!r} has no Modbus address: give it an offset "
                      f"in regmap.OFFSETS[{kind!r}][{table!r}] (a free one of its block) or, "
                      "when the block is full, in EXTENSION_OFFSETS, and raise MAP_VERSION")
