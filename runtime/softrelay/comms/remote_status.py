"""``softrelay status``: a running relay read through its own Modbus map, as the DCS reads it.

The configuration gives the map (names, addresses, types); the relay's configuration hash
(input registers 4-5) says whether the running relay has the same one: when not, the names
may be wrong and the status says so. Each point's block is one read (its input registers),
the globals another, so every point's figures are one scan's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymodbus.client import ModbusTcpClient

from softrelay.comms.regmap import FIRST_POINT, THERMAL_FLAGS, RegisterMap
from softrelay.core import BusbarFlag, set_flags
from softrelay.core.times import seconds_text, time_to_trip_text
from softrelay.firmware.supervision import WORDS, causes_of
from softrelay.io.modbus.registers import raw_value

GLOBALS = 30  #: input registers 0..29 (map version 2: the supervision word at 28, 29)


class UnreachableError(RuntimeError):
    """No relay answered (refused, timed out, or an exception response)."""


@dataclass
class Status:
    relay: dict[str, float]  #: the globals by quantity
    points: dict[str, dict[str, float]]  #: point -> quantity -> value
    matches: bool  #: the running relay's configuration hash is this map's


def read_input_registers(client: ModbusTcpClient, start: int, count: int,
                         unit: int) -> list[int]:
    reply = client.read_input_registers(start, count=count, device_id=unit)
    if reply.isError():
        raise UnreachableError(f"input registers {start}..{start + count - 1}: {reply}")
    return reply.registers


def values(regmap: RegisterMap, prefix: str, words: list[int], start: int) -> dict[str, float]:
    """The input-register entries named ``prefix``.* decoded from ``words`` read at ``start``."""
    out = {}
    for e in regmap.in_table("input_register"):
        point, _, quantity = e.name.rpartition(".")
        if point == prefix and start <= e.address and e.address + e.width <= start + len(words):
            out[quantity] = raw_value(words[e.address - start:e.address - start + e.width],
                                      e.type)
    return out


def read(host: str, port: int, regmap: RegisterMap, unit: int = 1,
         timeout: float = 2.0) -> Status:
    client = ModbusTcpClient(host, port=port, timeout=timeout, retries=0)
    if not client.connect():
        raise UnreachableError(f"no relay answers at {host}:{port}")
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


#: (title, thermal?, columns (header, width, text of a point's values), flags) per kind
TABLES = [
    ("point", True, [("theta", 7, lambda p: f"{p['theta']:.3f}"),
                     ("used", 6, lambda p: f"{p['capacity_used']:.0f}%"),
                     ("I_eq A", 8, lambda p: f"{p['i_eq']:.1f}"),
                     ("to trip", 9, lambda p: time_to_trip_text(p["time_to_trip"],
                                                                p["flags"])),
                     ("to start", 9, lambda p: seconds(p["time_to_start"]))], THERMAL_FLAGS),
    ("busbar", False, [(f"rise {c.upper()}", 7, lambda p, c=c: f"{p[f'rise_{c}']:.1f}")
                       for c in "abc"] + [("delta", 7, lambda p: f"{p['phase_delta']:.1f}")],
     [f for f in BusbarFlag if f]),
]


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

