"""``softrelay status``: a running relay read through its own Modbus map, as the DCS reads it.

The configuration gives the map (names, addresses, types); the relay's configuration hash
(input registers 4-5) says whether the running relay has the same one: when not, the names
may be wrong and the status says so. Each point's block is one read (its input registers),
the globals another, so every point's figures are one scan's.

Without a configuration (or with one whose layout does not fit the relay's) the relay says
what it is itself (``discover``): its globals (map version, configuration hash, the number of
points: input registers 0..29) and the status summary from 100 (point k at 100 + 4 k: its
main value and flag word), each point's kind told by the one register of its block only a
busbar has. The points are then 'point 0', 'point 1', ...: their names are in the
configuration. A relay whose map version is not this softrelay's is said to be so; what an
older map lacks is not read, what a newer one added is not shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pymodbus.client import ModbusTcpClient

from softrelay.core import PHASE_NAMES, set_flags
from softrelay.core.quantities import quantity as point_quantity
from softrelay.core.times import seconds_text, time_to_trip_text
from softrelay.modbus.protocol import ILLEGAL_ADDRESS, SERVER_BUSY, exception_text
from softrelay.modbus.protocol import register_value as raw_value
from softrelay.modbus.regmap import (
    BLOCK,
    BUSBAR_FLAGS,
    FIRST_POINT,
    GLOBAL_READINGS,
    MAP_VERSION,
    OFFSETS,
    SUMMARY,
    THERMAL_FLAGS,
    WIDTH,
    RegisterMap,
)
from softrelay.supervision.health import WORDS, causes_of

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # a refusal is said once, here

GLOBALS = 30  #: input registers 0..29 (map version 2: the supervision word at 28, 29)
GLOBALS_OF = {1: 28}  #: the globals of older map versions (input registers 0..27 in v1)
IDENTITY = 6  #: input registers 0..5: map version, firmware version, configuration hash
#: the one input register of a point's block that only a busbar has (its flag word)
BUSBAR_ONLY = OFFSETS["busbar"]["input_register"]["flags"]


class UnreachableError(RuntimeError):
    """No relay answered (refused, timed out, or an exception response)."""


class ExceptionResponseError(UnreachableError):
    """The relay answered a read with a Modbus exception (``code``)."""

    def __init__(self, text: str, code: int) -> None:
        super().__init__(text)
        self.code = code


@dataclass
class Status:
    relay: dict[str, float]  #: the globals by quantity
    points: dict[str, dict[str, float]]  #: point -> quantity -> value
    matches: bool  #: the running relay's configuration hash is this map's


def read_input_registers(client: ModbusTcpClient, start: int, count: int,
                         unit: int) -> list[int]:
    reply = client.read_input_registers(start, count=count, device_id=unit)
    if reply.isError():
        code = int(getattr(reply, "exception_code", 0) or 0)
        raise ExceptionResponseError(f"input registers {start}..{start + count - 1}: exception "
                             f"{code:02d} ({exception_text(code)})", code)
    return list(reply.registers)


def values(regmap: RegisterMap, prefix: str, words: list[int], start: int) -> dict[str, float]:
    """The input-register entries named ``prefix``.* decoded from ``words`` read at ``start``."""
    out = {}
    for e in regmap.in_table("input_register"):
        point, _, quantity = e.name.rpartition(".")
        if point == prefix and start <= e.address and e.address + e.width <= start + len(words):
            out[quantity] = raw_value(words[e.address - start:e.address - start + e.width],
                                      e.type)
    return out


@dataclass
class Discovered:
    """What a relay says of itself, without its configuration."""

    relay: dict[str, float]  #: the globals it has, by quantity
    points: list[tuple[str, float, int]]  #: per point k: (kind, main value, flag word)
    version: int  #: its map version

    @property
    def version_note(self) -> str:
        """'' when its map version is this softrelay's, else what that means here."""
        if self.version > MAP_VERSION:
            return (f"map {self.version} is newer than this softrelay's {MAP_VERSION}: what "
                    "was added since is not shown (upgrade softrelay to see it)")
        if self.version < MAP_VERSION:
            return (f"map {self.version} is older than this softrelay's {MAP_VERSION}: what "
                    "was added since is not on that relay")
        return ""


def global_values(words: list[int]) -> dict[str, float]:
    """The global input registers decoded from ``words`` (read from 0)."""
    out = {}
    for quantity, table, offset, kind, _, _ in GLOBAL_READINGS:
        if table == "input_register" and offset + WIDTH[kind] <= len(words):
            out[quantity] = raw_value(words[offset:offset + WIDTH[kind]], kind)
    return out


def connect(host: str, port: int, timeout: float) -> ModbusTcpClient:
    client = ModbusTcpClient(host, port=port, timeout=timeout, retries=0)
    if not client.connect():
        raise UnreachableError(f"no relay answers at {host}:{port}")
    return client


def read_globals(client: ModbusTcpClient, unit: int, where: str) -> dict[str, float]:
    """The relay's globals, as many as its map version has; an answer that is not a
    softrelay's, or a relay before its first scan, is an ``UnreachableError`` saying so."""
    try:
        identity = read_input_registers(client, 0, IDENTITY, unit)
    except ExceptionResponseError as exc:
        if exc.code == SERVER_BUSY:
            raise UnreachableError(f"the relay at {where} has not finished its first scan "
                                   "(exception 06, device busy): try again") from None
        raise UnreachableError(f"{where} answers Modbus, but not as a softrelay ({exc})"
                               ) from None
    version = identity[0]
    count = GLOBALS_OF.get(version, GLOBALS)
    return global_values(read_input_registers(client, 0, count, unit)) | {
        "map_version": version}


def discover(host: str, port: int, unit: int = 1, timeout: float = 2.0) -> Discovered:
    """Read what the relay at ``host:port`` says of itself (see the module's docstring)."""
    where = f"{host}:{port}"
    client = connect(host, port, timeout)
    try:
        relay = read_globals(client, unit, where)
        n = int(relay.get("points", 0))
        words: list[int] = []
        for start in range(0, 4 * n, 124):  # 31 points a read
            count = min(124, 4 * n - start)
            words += read_input_registers(client, SUMMARY + start, count, unit)
        points = []
        for k in range(n):
            row = words[4 * k:4 * k + 4]
            try:
                read_input_registers(client, FIRST_POINT + BLOCK * k + BUSBAR_ONLY, 2, unit)
                kind = "busbar"
            except ExceptionResponseError as exc:
                if exc.code != ILLEGAL_ADDRESS:
                    raise
                kind = "thermal"
            points.append((kind, raw_value(row[:2], "float32"),
                           int(raw_value(row[2:], "uint32"))))
    except UnreachableError:
        raise
    except Exception as exc:  # connection lost, timeout: pymodbus raises its own kinds
        raise UnreachableError(f"{where}: {exc}") from None
    finally:
        client.close()
    return Discovered(relay, points, int(relay["map_version"]))


def read(host: str, port: int, regmap: RegisterMap, unit: int = 1,
         timeout: float = 2.0) -> Status:
    """The relay read through ``regmap`` (its configuration's map)."""
    client = connect(host, port, timeout)
    try:
        relay = values(regmap, "relay", read_input_registers(client, 0, GLOBALS, unit), 0)
        points = {}
        for name in regmap.point_names:  # its block (not its summary row at 100 + 4 k)
            entries = [e for e in regmap.in_table("input_register")
                       if e.name.startswith(name + ".") and e.address >= FIRST_POINT]
            start = min(e.address for e in entries)
            count = max(e.address + e.width for e in entries) - start
            points[name] = values(regmap, name, read_input_registers(client, start, count,
                                                                     unit), start)
    except Exception as exc:  # connection lost, timeout: pymodbus raises its own kinds
        if isinstance(exc, UnreachableError):
            raise
        raise UnreachableError(f"{host}:{port}: {exc}") from None
    finally:
        client.close()
    return Status(relay, points, int(relay["config_hash"]) == regmap.config_hash)


seconds = seconds_text


def flag_names(word: float, flags) -> str:
    return ", ".join(set_flags(int(word), flags)) or "-"


def unit(kind: str, name: str) -> str:
    """The unit ``core.quantities`` gives a quantity (KeyError for one the kind lacks)."""
    return point_quantity(kind, name).unit


class Shown:
    """A column's text of a point: its quantity (``core.quantities``, as the map names it)
    through ``text(value, point's values)``; a quantity its kind does not show is a KeyError
    here, at import."""

    def __init__(self, kind: str, quantity: str, text: Callable[[float, dict], str]) -> None:
        point_quantity(kind, quantity)
        self.kind, self.quantity, self.text = kind, quantity, text

    def __call__(self, p: dict) -> str:
        return self.text(p[self.quantity], p)


#: (title, thermal?, columns (header, width, text of a point's values), flags) per kind
TABLES = [
    ("point", True, [
        ("theta", 7, Shown("thermal", "theta", lambda v, p: f"{v:.3f}")),
        ("used", 6, Shown("thermal", "capacity_used",
                          lambda v, p: f"{v:.0f}{unit('thermal', 'capacity_used')}")),
        (f"I_eq {unit('thermal', 'i_eq')}", 8, Shown("thermal", "i_eq",
                                                     lambda v, p: f"{v:.1f}")),
        ("to trip", 9, Shown("thermal", "time_to_trip",
                             lambda v, p: time_to_trip_text(v, p["flags"]))),
        ("to start", 9, Shown("thermal", "time_to_start", lambda v, p: seconds(v)))],
     THERMAL_FLAGS),
    ("busbar", False, [
        *((f"rise {c.upper()}", 7, Shown("busbar", f"rise_{c}", lambda v, p: f"{v:.1f}"))
          for c in PHASE_NAMES),
        ("delta", 7, Shown("busbar", "phase_delta", lambda v, p: f"{v:.1f}"))], BUSBAR_FLAGS),
]


def check_columns() -> None:
    """Each column names a quantity its kind shows (raises KeyError naming the first)."""
    for _, _, columns, _ in TABLES:
        for _, _, show in columns:
            point_quantity(show.kind, show.quantity)


check_columns()


def supervision_text(word: int, points_lost: int) -> str:
    """The self-supervision causes the map's word says are active, in words."""
    return "; ".join(f"measurement lost on {points_lost} point(s)"
                     if cause == "measurement_lost" else WORDS[cause]
                     for cause in causes_of(word))


def render(status: Status, regmap: RegisterMap, where: str) -> str:
    r = status.relay
    lines = [f"softrelay {int(r['firmware_major'])}.{int(r['firmware_minor'])}."
             f"{int(r['firmware_patch'])} at {where}, map {int(r['map_version'])}, "
             f"configuration 0x{int(r['config_hash']):08x}"
             + ("" if status.matches else f" (NOT this file's 0x{regmap.config_hash:08x}: "
                "names and layout may be wrong)"),
             f"{'healthy' if r['healthy'] else 'NOT HEALTHY'}; scan {r['period']:g} ms, "
             f"{int(r['scans'])} scans, lateness p99 {r['lateness_p99']:.0f} us (max "
             f"{r['lateness_max']:.0f}), execution p99 {r['execution_p99']:.0f} us (max "
             f"{r['execution_max']:.0f}), {int(r['overruns'])} overruns, event "
             f"{int(r['events'])}" + ("; settings UNLOCKED" if r["unlocked"] else "")]
    version = int(r["map_version"])
    if version != MAP_VERSION:
        lines.append(Discovered(r, [], version).version_note)
    causes = supervision_text(int(r.get("supervision", 0)), int(r.get("points_lost", 0)))
    lines += ([f"supervision: {causes}"] if causes else []) + [""]
    for title, kind, columns, flags in TABLES:
        names = [p for p in regmap.point_names if ("theta" in status.points[p]) == kind]
        if not names:
            continue
        lines.append(f"{title:12s} " + " ".join(f"{h:>{w}s}" for h, w, _ in columns)
                     + "  flags")
        for name in names:
            p = status.points[name]
            lines.append(f"{name:12s} " + " ".join(f"{show(p):>{w}s}" for _, w, show in columns)
                         + f"  {flag_names(p['flags'], flags)}")
    return "\n".join(lines) + "\n"



def render_discovered(found: Discovered, where: str, note: str = "") -> str:
    """The relay's own view: globals and the summary, points by number. ``note``: why the
    configuration's names are not shown (default: none was given)."""
    r = found.relay
    head = (f"softrelay {int(r['firmware_major'])}.{int(r['firmware_minor'])}."
            f"{int(r['firmware_patch'])} at {where}, map {found.version}, configuration "
            f"0x{int(r['config_hash']):08x}, {len(found.points)} point(s)")
    lines = [head]
    if found.version_note:
        lines.append(found.version_note)
    lines.append(note or "no --config: the points' names are in the relay's configuration "
                 "(--config FILE gives names and full figures)")
    if "healthy" in r:
        lines.append(f"{'healthy' if r['healthy'] else 'NOT HEALTHY'}; scan {r['period']:g} "
                     f"ms, {int(r['scans'])} scans, lateness p99 {r['lateness_p99']:.0f} us "
                     f"(max {r['lateness_max']:.0f}), {int(r['overruns'])} overruns, event "
                     f"{int(r['events'])}" + ("; settings UNLOCKED" if r.get("unlocked")
                                              else ""))
    causes = supervision_text(int(r.get("supervision", 0)), int(r.get("points_lost", 0)))
    lines += ([f"supervision: {causes}"] if causes else []) + [""]
    lines.append(f"{'point':10s} {'kind':8s} {'value':>14s}  flags")
    for k, (kind, value, flags) in enumerate(found.points):
        shown = (f"theta {value:.3f}" if kind == "thermal" else f"rise {value:.1f} C")
        names = flag_names(flags, THERMAL_FLAGS if kind == "thermal" else BUSBAR_FLAGS)
        lines.append(f"{'point ' + str(k):10s} {kind:8s} {shown:>14s}  {names}")
    return "\n".join(lines) + "\n"
