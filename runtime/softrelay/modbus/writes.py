"""What a Modbus write does to the relay: commands, preset theta, the access codes, settings.

``RelayWrites.write(items, session)`` takes the whole entries one request writes (see
``modbus_pdu.Writes``) and either applies all of them or refuses all with an exception code.
``session`` (``authority.Session``: a TCP connection or an RTU line) is who writes: each write
needs the level ``authority.Authority`` says the session holds (``for_session`` binds one, for
``SlaveLogic.respond``):

- ``relay.unlock`` (uint32): a level's code gives the session that level for
  ``access.minutes``; 0 drops it; a wrong code is refused and counts towards the peer's
  lockout; codes are never recorded or logged. Handled first: the rest of the same request
  is checked against the level it gives;
- ``relay.event_cursor`` (uint32): moves the event window (``event_window``); level 0 (it is
  read-side bookkeeping);
- coils ``reset`` / ``acknowledge`` (a point's, or the relay's ``*_all``) and
  ``clear_statistics``: writing 1 queues the command for the next scan (as the relay's button
  would); writing 0 does nothing and needs nothing;
- ``<point>.preset_theta`` (float32, 0..10): queues a preset; anything else is 03;
- settings (RW-unlocked): the point's settings with the written values are validated exactly
  as the configuration file is and queued for the next scan (03 when they do not validate:
  the reason is recorded as an event).

A write the session has no authority for, any write while the local/remote switch is in
local (but the event cursor's and a 0 to ``relay.unlock``), and a refused code answer
``REFUSED``: exception 01, illegal function, as the Modbus/TCP Security specification answers
a request its role does not authorise (and as the application protocol describes 01: "the
server is in the wrong state to process a request of this type"); 04 would tell the DCS the
relay had failed. Refusals are recorded aggregated (``authority.RefusalLog``); an accepted write
is recorded by the queue that applies it, naming the session, its level and old -> new.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

from pydantic import ValidationError

from softrelay.core.commands import Commands, Request, SettingsChanges
from softrelay.core.settings import INPUT_LOSS
from softrelay.modbus.authority import Authority, Session, level_text
from softrelay.modbus.event_window import EventWindow
from softrelay.modbus.pdu import ILLEGAL_FUNCTION, ILLEGAL_VALUE
from softrelay.modbus.regmap import ENUM_SETTINGS, Entry

Record = Callable[..., None]
REFUSED = ILLEGAL_FUNCTION  #: a write without the authority it needs (see the docstring)
#: enumerated settings whose register holds a code: code -> the model's word
ENUM_WORDS = {"input_loss": {int(v): k for k, v in INPUT_LOSS.items()}}
#: settings that a NaN switches off (null in the file)
SWITCHED_OFF_BY_NAN = {"warning_abs", "critical_abs"}


def as_float32(raw: int) -> float:
    return struct.unpack(">f", raw.to_bytes(4, "big"))[0]


class SessionWrites:
    """``RelayWrites`` bound to one session (the ``writes`` ``SlaveLogic.respond`` takes)."""

    def __init__(self, writes: RelayWrites, session: Session | None) -> None:
        self.writes = writes
        self.session = session

    def write(self, items: list[tuple[Entry, int]]) -> int:
        return self.writes.write(items, self.session)


class RelayWrites:
    def __init__(self, commands: Commands, settings: SettingsChanges, authority: Authority,
                 record: Record | None = None, source: str = "modbus",
                 events: EventWindow | None = None) -> None:
        self.events = events
        self.commands = commands
        self.settings = settings
        self.authority = authority
        self.record = record
        self.source = source

    def for_session(self, session: Session | None) -> SessionWrites:
        return SessionWrites(self, session)

    def _who(self, session: Session) -> str:
        """The source text of an accepted write: who, and the level held."""
        return f"{self.source} {session.who}, {level_text(self.authority.level(session))}"

    def write(self, items: list[tuple[Entry, int]], session: Session | None = None) -> int:
        requests: list[Request] = []
        changes: dict[str, dict] = {}
        unlock: int | None = None
        cursor: int | None = None
        acting: list[str] = []  #: what the request does, by the name access.levels uses
        for entry, raw in items:
            point, _, quantity = entry.name.rpartition(".")
            if entry.source[0] == "relay":  # the event cursor, the one writable global
                cursor = raw
            elif entry.source[0] == "command":
                action = entry.source[1]
                if action == "unlock":
                    unlock = raw
                elif action == "preset":
                    try:  # the request checks its theta (0..10; NaN is outside)
                        requests.append(Request("preset", (point,), as_float32(raw)))
                    except ValueError:
                        return ILLEGAL_VALUE
                    acting.append("preset")
                elif raw:
                    kind = action.removesuffix("_all")
                    points = () if point == "relay" else (point,)
                    requests.append(Request(kind, points))
                    acting.append(kind)
            else:  # a setting
                value: float | bool | str | None = (raw if entry.type == "uint16"
                                                    else as_float32(raw))
                if quantity in ENUM_SETTINGS:
                    if quantity in ENUM_WORDS:
                        if raw not in ENUM_WORDS[quantity]:
                            return ILLEGAL_VALUE
                        value = ENUM_WORDS[quantity][raw]
                    elif quantity == "latch":
                        if raw not in (0, 1):
                            return ILLEGAL_VALUE
                        value = bool(raw)
                elif quantity in SWITCHED_OFF_BY_NAN and math.isnan(value):
                    value = None  # NaN written: the limit switched off, as null in the file
                changes.setdefault(point, {})[quantity] = value
        if changes:
            acting.append("settings")
        authority = self.authority
        if session is None:  # a caller that names no session holds nothing (level 0)
            session = Session(("anonymous",), "(no session)", "(no session)")
        if authority.is_local() and (acting or unlock):
            authority.refuse_write(session, "a write", 0)  # records why (local)
            return REFUSED
        if unlock is not None and not authority.offer(session, unlock):
            return REFUSED
        for what in dict.fromkeys(acting):
            if authority.refuse_write(session, what.replace("_", " "),
                                      authority.needed(what)) is not None:
                return REFUSED
        source = self._who(session)
        if changes:
            validated = {}
            for point, update in changes.items():
                current = self.settings.current[point]
                try:
                    validated[point] = type(current).model_validate(
                        current.model_dump() | update)
                except ValidationError as exc:
                    if self.record is not None:
                        why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: "
                                        f"{e['msg']}" for e in exc.errors())
                        self.record("system", "settings", f"write to {point} refused (from "
                                    f"{source}): {why}")
                    return ILLEGAL_VALUE
            for point, settings in validated.items():
                self.settings.put(point, settings, source)
        for request in requests:
            self.commands.put(Request(request.kind, request.points, request.value, source))
        if cursor is not None and self.events is not None:
            self.events.cursor = cursor
        return 0
