"""The fault kinds a simulated bus can carry, and per medium where each acts or why it cannot.

One ``FaultKind`` (the seed's troubleshooting matrix) and one ``Medium`` table per kind of bus
the twins simulate (``MEDIA``: the plant read directly, I2C, SPI, Modbus TCP and RTU). A table
says for every kind either where it acts (``Where``) or why no bus of that medium can have it;
the injectors (``sim.devices``, ``sim.chip_faults``, ``sim.modbus_twin``, ``sim.twin_server``)
take their sets from it and the configuration refuses a ``plant.faults`` entry the medium (or
the chip, ``chips.ChipSpec.refused``) cannot have, with the same reason.

Where ``garbage`` acts is the medium's: on a wire (I2C, SPI, Modbus) the bytes of an answer are
corrupted and the master's checks see it; on the ``simulated`` bus, which has no wire, the
reading itself is unreadable (NaN).

Pure data: imports nothing of softrelay. A kind added to ``FaultKind`` without a row in every
table fails at import (``Medium.__post_init__``) and in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType


class FaultKind(str, Enum):
    """A fault injected into a simulated device; its value is the word of ``plant.faults``'
    ``kind`` and of the event texts, and it compares equal to that word."""

    NACK = "nack"  #: the device does not answer (no acknowledge, a failed target)
    REFUSED = "refused"  #: the connection is refused (a network fault)
    SLOW = "slow"  #: the answer comes later than the timeout
    SENTINEL = "sentinel"  #: the sensor reports its "no reading" value
    STUCK = "stuck"  #: the value freezes at the one it had
    NOISY = "noisy"  #: the value jitters (plus N(0, sigma))
    GARBAGE = "garbage"  #: the answer is unreadable (see ``MEDIA`` for where)

    def __str__(self) -> str:  # the word, as in a configuration file (not 'FaultKind.NACK')
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Where(str, Enum):
    """Where a fault acts on a medium."""

    TRANSACTION = "transaction"  #: the exchange fails: no answer, a refusal, an answer too late
    WIRE = "wire"  #: the bytes on the wire: an answer corrupted, or nobody driving the line
    ELEMENT = "element"  #: in a chip's sensing element, before the chip codes the value
    VALUE = "value"  #: on the value the device reports (a device addressed by quantity)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Medium:
    """What one medium does with every ``FaultKind``: ``where`` it acts, or why it is
    ``not_on`` this medium (each kind in exactly one of the two)."""

    name: str
    where: Mapping[FaultKind, Where]
    not_on: Mapping[FaultKind, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        missing = unplaced(self)
        if missing:
            raise TypeError(f"fault medium {self.name!r}: no row for {', '.join(missing)}")
        both = set(self.where) & set(self.not_on)
        if both:
            raise TypeError(f"fault medium {self.name!r}: {sorted(both)} both act and cannot")

    def kinds(self, *places: Where) -> tuple[FaultKind, ...]:
        """The kinds that act at any of ``places`` (all it can carry when none is named), in
        ``FaultKind`` order."""
        return tuple(k for k in FaultKind if k in self.where
                     and (not places or self.where[k] in places))


def unplaced(medium: Medium) -> list[str]:
    """The kinds ``medium`` says nothing about (neither where it acts nor why it cannot)."""
    return [kind.value for kind in FaultKind
            if kind not in medium.where and kind not in medium.not_on]


def kind_named(name: str) -> FaultKind | None:
    """The fault kind called ``name`` (a ``FaultKind`` is its own name); None for none."""
    try:
        return FaultKind(name)
    except ValueError:
        return None


_T, _W, _E, _V = Where.TRANSACTION, Where.WIRE, Where.ELEMENT, Where.VALUE
_F = FaultKind
_NETWORK = "a network fault: a local bus has no connection to refuse"

#: medium -> its table; a bus kind's medium is ``medium_of(kind)``
MEDIA: Mapping[str, Medium] = MappingProxyType({m.name: m for m in (
    # the plant's values read directly (bus kind 'simulated'): one transaction per batch, or
    # per address where the fault is addressed; no wire, so garbage is an unreadable value
    Medium("simulated", MappingProxyType({
        _F.NACK: _T, _F.REFUSED: _T, _F.SLOW: _T,
        _F.SENTINEL: _V, _F.STUCK: _V, _F.NOISY: _V, _F.GARBAGE: _V})),
    # I2C: the chip does not acknowledge (EREMOTEIO) or stretches the clock past the bus
    # timeout (ETIMEDOUT); interference corrupts the answer's bytes
    Medium("i2c", MappingProxyType({
        _F.NACK: _T, _F.SLOW: _T, _F.GARBAGE: _W,
        _F.SENTINEL: _E, _F.STUCK: _E, _F.NOISY: _E}),
           MappingProxyType({_F.REFUSED: _NETWORK})),
    # SPI has no acknowledge: a chip that does not answer leaves MISO to its pull-up (0xFF)
    Medium("spi", MappingProxyType({
        _F.NACK: _W, _F.GARBAGE: _W,
        _F.SENTINEL: _E, _F.STUCK: _E, _F.NOISY: _E}),
           MappingProxyType({
               _F.REFUSED: _NETWORK,
               _F.SLOW: "the SPI master clocks every bit: a chip cannot answer late"})),
    # Modbus TCP and RTU: the server answers a failed target, a refused path or late; garbage
    # scrambles the frame (a bad byte count / CRC); the twin codes the value faults
    Medium("modbus", MappingProxyType({
        _F.NACK: _T, _F.REFUSED: _T, _F.SLOW: _T, _F.GARBAGE: _W,
        _F.SENTINEL: _V, _F.STUCK: _V, _F.NOISY: _V})),
)})

#: the media of the bus kinds that are not a medium's own name
_BUS_MEDIUM = MappingProxyType({"modbus_tcp": "modbus", "modbus_rtu": "modbus"})


def medium_of(bus_kind: str) -> Medium:
    """The table of a bus of ``bus_kind`` ('simulated', 'i2c', 'spi', 'modbus_tcp', ...)."""
    return MEDIA[_BUS_MEDIUM.get(bus_kind, bus_kind)]


def device_fault_refusal(address: str, kind: FaultKind) -> str | None:
    """Why ``kind`` cannot be injected at ``address`` of a simulated Modbus line, or None: a
    fault of the transaction or the wire belongs to a device (or the whole server, '*'),
    never to one quantity of it. The reason ``sim.twin_server.TwinServer.inject`` raises and
    the configuration refuses with."""
    if "." in address and MEDIA["modbus"].where.get(kind) is not Where.VALUE:
        return (f"{kind.value!r} is a fault of a device or of the server, not of {address!r}: "
                f"address it as {address.partition('.')[0]!r} (or '*')")
    return None


def fault_refusal(bus: str, sensors: dict[str, tuple[str, ...]],
                  refused: Mapping[str, Mapping[str, str]], address: str, kind: str
                  ) -> tuple[str, str] | None:
    """Why ``kind`` cannot be injected at ``address`` of a simulated ``bus`` ('i2c' or 'spi'),
    as (the key at fault, 'kind' or 'address'; the reason), or None when it can.

    ``sensors``: each chip's name -> its quantities; ``refused``: a chip's name -> faults it
    cannot have -> why (``chips.REFUSED_ON_CHIP`` of its chip). The reasons are the ones
    ``sim.chip_faults.BusFaults.check`` raises (a test holds them equal). A fault that fails a
    chip's transactions or its wire is addressed to the chip, not to one of its quantities."""
    medium = MEDIA[bus]
    known = kind_named(kind)
    if known is None:
        return "address", f"unknown fault {kind!r}"
    if known in medium.not_on:
        return "kind", f"no {known.value!r} on an {bus.upper()} bus: {medium.not_on[known]}"
    if address == "*":
        return None
    sensor, _, quantity = address.partition(".")
    if sensor not in sensors:
        return "address", (f"{address!r}: no sensor {sensor!r} on this bus "
                           f"(sensors: {', '.join(sensors)})")
    if quantity and quantity not in sensors[sensor]:
        return "address", (f"{address!r}: {sensor!r} has no quantity {quantity!r} "
                           f"({', '.join(sensors[sensor])})")
    if known in refused.get(sensor, {}):
        return "address", f"{address!r}: no {known.value!r} here: {refused[sensor][known]}"
    if quantity and medium.where[known] in (Where.TRANSACTION, Where.WIRE):
        return "address", (f"{address!r}: a {known.value!r} fails a whole chip's "
                           f"transactions: address it as {sensor!r} (or '*')")
    return None
