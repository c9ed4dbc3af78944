"""What a protected point shows: one table per kind of point, the one list every channel is
generated from.

For each quantity a point shows: its name (``<point>.<name>`` in the register map, the key in
the MQTT document), the outputs table's field it comes from (and the element, for a field that
holds one value per phase or channel), the unit and the words the map states, the map's coding
and scale, the Prometheus family it is a sample of, and where it sits in the MQTT document.
The register map (``modbus.regmap``), the metrics (``telemetry.metrics``), the MQTT document
(``telemetry.reading``), the terminal view (``screen``) and the remote status
(``modbus.status_client``) all read these tables; none lists the quantities again.

A quantity added here appears in the map (once it has an offset in ``modbus.regmap.OFFSETS``:
without one the map refuses to import, naming it; addresses never follow this table's order),
in the metrics (its family; a new family is a new series for the dashboards) and in the MQTT
document. The flag words, the currents' quality, the counters, the commands and the settings
are the map's own (``modbus.regmap``): they are not measurements of the point.

Pure data: it computes nothing and imports nothing of the runtime (the core's layout aside).
"""

from __future__ import annotations

import builtins
import enum
from dataclasses import dataclass

from softrelay.core.layout import CHANNEL_NAMES, PHASE_NAMES, ChannelFault


@dataclass(frozen=True)
class Family:
    """A Prometheus metric family (``softrelay_<name>_<unit>``): its help, its base unit and the
    label that tells its quantities apart (beside ``point``)."""

    name: str
    help: str
    unit: str = ""
    label: str | None = None  #: e.g. "phase": one sample per phase of each point


@dataclass(frozen=True)
class Quantity:
    """One value a protected point shows."""

    name: str  #: the map's '<point>.<name>', the document's key
    field: str  #: the field of the kind's outputs table (``core.layout``) it comes from
    unit: str  #: the engineer's unit, as the map states it
    description: str  #: the map's words
    index: int | None = None  #: the element of an array field (a phase, a channel)
    type: str = "float32"  #: how the map codes it (float32 values, uint16 codes)
    scale: float = 1.0  #: the map's scale: engineering value = raw x scale
    family: Family | None = None  #: the metric family it is a sample of (None: see ``why``)
    label: str = ""  #: its value of the family's label
    #: metric value = value / divisor (Prometheus's base units: a ratio, C per second)
    divisor: float = 1.0
    document: tuple[str, ...] = ()  #: its key path in the MQTT document (default: the name)
    #: shown 0 while the point's TRIP flag is set (``core.times.time_to_trip``), but in the map
    zero_while_tripped: bool = False
    why: str = ""  #: why it has no metric family (a deliberate absence, said here)
    #: a word of fault bits: the MQTT document names the bits set (and leaves it out at 0)
    bits: builtins.type[enum.IntFlag] | None = None  # builtins': ``type`` is a field here

    @property
    def path(self) -> tuple[str, ...]:
        return self.document or (self.name,)


def _check(kind: str, table: tuple[Quantity, ...]) -> tuple[Quantity, ...]:
    """Names unique, each with a family or the reason it has none (raises ValueError)."""
    problems = [f"{kind} {q.name!r} has neither a metric family nor a reason (why)"
                for q in table if q.family is None and not q.why]
    names = [q.name for q in table]
    problems += [f"{kind} {n!r} is listed twice" for n in sorted(set(names))
                 if names.count(n) > 1]
    paths = [q.path for q in table]
    problems += [f"{kind} document key {'/'.join(p)!r} twice" for p in sorted(set(paths))
                 if paths.count(p) > 1]
    if problems:
        raise ValueError("point quantities: " + "; ".join(problems))
    return table


# ---------------------------------------------------------------- thermal (ANSI 49)

THERMAL_CURRENT = Family("thermal_current", "equivalent (i_eq), positive (i1) and negative "
                         "(i2) sequence, largest phase (i_max)", "amperes", "quantity")
THERMAL_FAMILIES = (
    Family("thermal_theta", "thermal level, per unit of the base capacity (1.0: steady state "
           "at I_B)"),
    Family("thermal_capacity_used", "theta / theta_trip (trip at 1)", "ratio"),
    Family("thermal_time_to_trip", "at the present current; +Inf: never, 0: tripped, NaN: "
           "unknown", "seconds"),
    Family("thermal_time_to_start", "cooling left before a start is permitted", "seconds"),
    THERMAL_CURRENT,
)
_TH = {f.name: f for f in THERMAL_FAMILIES}


def _current(name: str, description: str) -> Quantity:
    return Quantity(name, name, "A", description, family=THERMAL_CURRENT, label=name)


THERMAL: tuple[Quantity, ...] = _check("thermal", (
    Quantity("theta", "theta", "pu", "thermal state, per-unit of the base capacity (1.0 at "
             "I_B)", family=_TH["thermal_theta"]),
    Quantity("capacity_used", "capacity_used", "%", "100 theta / theta_trip",
             family=_TH["thermal_capacity_used"], divisor=100.0),
    Quantity("time_to_trip", "time_to_trip", "s", "at the present current; 0 tripped, +inf "
             "never, NaN unknown (input fault)", family=_TH["thermal_time_to_trip"],
             zero_while_tripped=True),
    Quantity("time_to_start", "time_to_start", "s", "cooling until a start is permitted "
             "(theta < theta_inhibit) and, while tripped, a reset accepted (theta < "
             "theta_reset); 0 now", family=_TH["thermal_time_to_start"]),
    _current("i_eq", "equivalent thermal current (K2-weighted, after KST)"),
    _current("i1", "positive-sequence current"),
    _current("i2", "negative-sequence current"),
    _current("i_max", "largest phase RMS current"),
))


# ---------------------------------------------------------------- busbar (phase temperatures)

BUSBAR_FAMILIES = (
    Family("busbar_temperature", "smoothed conductor and ambient temperatures (NaN while the "
           "channel is excluded)", "celsius", "channel"),
    Family("busbar_rise", "phase conductor over ambient", "celsius", "phase"),
    Family("busbar_rate_of_rise", "smoothed rate of rise, C per second", "celsius_per_second",
           "phase"),
    Family("busbar_max_rise", "largest phase rise over ambient", "celsius"),
    Family("busbar_phase_delta", "largest phase-to-phase difference", "celsius"),
    Family("busbar_channel_fault", "the channel's fault bits (1 NaN, 2 sentinel, 4 range, 8 "
           "stale, 16 I/O error, 32 erratic)", label="channel"),
)
_BB = {f.name: f for f in BUSBAR_FAMILIES}
#: not a metric (yet): adding a family is a new series for every dashboard, a deliberate change
#: of the committed scrape (tests/golden/metrics_demo.json) to make with a CHANGELOG line
_NO_FAMILY = "not in the metrics' committed families; the map and the MQTT document have it"

BUSBAR: tuple[Quantity, ...] = _check("busbar", (
    *(Quantity(f"level_{c}", "level", "C", f"smoothed temperature of channel {c.upper()} (NaN "
               "when excluded)", k, family=_BB["busbar_temperature"], label=c,
               document=("temperature", c)) for k, c in enumerate(CHANNEL_NAMES)),
    *(Quantity(f"rate_{p}", "rate", "C/min", f"rate of rise of phase {p.upper()}", k,
               family=_BB["busbar_rate_of_rise"], label=p, divisor=60.0,
               document=("rate", p)) for k, p in enumerate(PHASE_NAMES)),
    *(Quantity(f"rise_{p}", "rise", "C", f"phase {p.upper()} over ambient", k,
               family=_BB["busbar_rise"], label=p, document=("rise", p))
      for k, p in enumerate(PHASE_NAMES)),
    *(Quantity(f"joint_index_{p}", "joint_index", "", f"phase {p.upper()}'s rise over the "
               "rise expected from the other phases", k, why=_NO_FAMILY,
               document=("joint_index", p)) for k, p in enumerate(PHASE_NAMES)),
    Quantity("max_rise", "max_rise", "C", "largest phase rise over ambient",
             family=_BB["busbar_max_rise"]),
    Quantity("phase_delta", "phase_delta", "C", "hottest minus coolest valid phase",
             family=_BB["busbar_phase_delta"]),
    *(Quantity(f"fault_{c}", "fault", "", f"channel {c.upper()} fault bits (ChannelFault: 1 "
               "NaN, 2 sentinel, 4 range, 8 stale, 16 I/O error, 32 erratic)", k, "uint16",
               family=_BB["busbar_channel_fault"], label=c, document=("faults", c),
               bits=ChannelFault)
      for k, c in enumerate(CHANNEL_NAMES)),
    Quantity("imbalance_pair", "imbalance_pair", "", "phase pair of the delta: 0 none, 1 A-B, "
             "2 B-C, 3 C-A", type="uint16", why=_NO_FAMILY),
    Quantity("hottest_phase", "hottest_phase", "", "1 A, 2 B, 3 C; 0 none valid",
             type="uint16", why=_NO_FAMILY),
    Quantity("joint_phase", "joint_phase", "", "phase of a suspect joint: 1 A, 2 B, 3 C; 0 "
             "none", type="uint16", why=_NO_FAMILY),
))

#: each kind's table, and the metric families in the order the metrics give them
QUANTITIES: dict[str, tuple[Quantity, ...]] = {"thermal": THERMAL, "busbar": BUSBAR}
FAMILIES: dict[str, tuple[Family, ...]] = {"thermal": THERMAL_FAMILIES,
                                           "busbar": BUSBAR_FAMILIES}


def quantity(kind: str, name: str) -> Quantity:
    """The quantity ``name`` of ``kind`` (KeyError naming the kind's quantities)."""
    for q in QUANTITIES[kind]:
        if q.name == name:
            return q
    raise KeyError(f"{kind} points show no {name!r} (they show "
                   f"{', '.join(q.name for q in QUANTITIES[kind])})")
