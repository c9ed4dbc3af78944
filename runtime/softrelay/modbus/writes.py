"""What a Modbus write does to the relay: commands, preset theta, the access codes, settings.

``RelayWrites.write(items, session)`` takes the whole entries one request writes (see
``pdu.Writes``) and either applies all of them or refuses all with an exception code.
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

from pydantic import BaseModel, ValidationError

from softrelay.core.commands import Commands, Request, SettingsChanges
from softrelay.core.settings import INPUT_LOSS
from softrelay.modbus.authority import Authority, Session, level_text
from softrelay.modbus.event_window import EventWindow
from softrelay.modbus.pdu import ILLEGAL_FUNCTION, ILLEGAL_VALUE
from softrelay.modbus.regmap import ENUM_SETTINGS, Entry

Record = Callable[..., object]  #: the event recorder's record (what it returns is not used)
REFUSED = ILLEGAL_FUNCTION  #: a write without the authority it needs (see the docstring)
#: enumerated settings whose register holds a code: code -> the model's word
ENUM_WORDS = {"input_loss": {int(v): k for k, v in INPUT_LOSS.items()}}
#: settings that a NaN switches off (null in the file)
SWITCHED_OFF_BY_NAN = {"warning_abs", "critical_abs"}
Value = float | bool | str | None  #: a setting's value as the point's settings model takes it


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
        """Apply every entry of one request, or none: 0, or the exception code refusing it
        (03 a value refused, ``REFUSED`` a write without the authority it needs)."""
        request = _WriteRequest()
        for entry, raw in items:
            code = request.read(entry, raw)
            if code:
                return code
        if session is None:  # a caller that names no session holds nothing (level 0)
            session = Session(("anonymous",), "(no session)", "(no session)")
        code = self._refusal(request, session)
        if code:
            return code
        source = self._who(session)
        code = self._put_settings(request.changes, source)
        if code:
            return code
        for command in request.requests:
            self.commands.put(Request(command.kind, command.points, command.value, source))
        if request.cursor is not None and self.events is not None:
            self.events.cursor = request.cursor
        return 0

    def _refusal(self, request: _WriteRequest, session: Session) -> int | None:
        """``REFUSED`` when ``session`` may not do what ``request`` does (the switch in local,
        a wrong code, a level too low), recorded by the authority; None when it may. An
        unlock code is offered first: the rest is checked against the level it gives."""
        authority = self.authority
        acting = request.acting
        if authority.is_local() and (acting or request.unlock):
            authority.refuse_write(session, "a write", 0)  # records why (local)
            return REFUSED
        if request.unlock is not None and not authority.offer(session, request.unlock):
            return REFUSED
        for what in dict.fromkeys(acting):
            if authority.refuse_write(session, what.replace("_", " "),
                                      authority.needed(what)) is not None:
                return REFUSED
        return None

    def _put_settings(self, changes: dict[str, dict[str, Value]], source: str) -> int | None:
        """Validate each point's settings with ``changes`` as the configuration file is, and
        queue them all; ``ILLEGAL_VALUE`` (nothing queued, the reason recorded) when one does
        not validate."""
        validated = {}
        for point, update in changes.items():
            current = self.settings.current[point]
            assert isinstance(current, BaseModel)  # a point's settings model
            try:
                validated[point] = type(current).model_validate(current.model_dump() | update)
            except ValidationError as exc:
                if self.record is not None:
                    why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: "
                                    f"{e['msg']}" for e in exc.errors())
                    self.record("system", "settings", f"write to {point} refused (from "
                                f"{source}): {why}")
                return ILLEGAL_VALUE
        for point, settings in validated.items():
            self.settings.put(point, settings, source)
        return None


class _WriteRequest:
    """What one Modbus write request asks for, read entry by entry (nothing applied yet)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []  #: commands, for the next scan
        self.changes: dict[str, dict[str, Value]] = {}  #: point -> setting -> new value
        self.unlock: int | None = None  #: the code written to relay.unlock
        self.cursor: int | None = None  #: the event cursor written
        self.commanded: list[str] = []  #: the commands it gives, in the order written

    @property
    def acting(self) -> list[str]:
        """What the request does, by the name access.levels uses: its commands, then
        settings (if it writes any)."""
        return self.commanded + (["settings"] if self.changes else [])

    def read(self, entry: Entry, raw: int) -> int | None:
        """Take one written entry; ``ILLEGAL_VALUE`` when its value is refused."""
        point, _, quantity = entry.name.rpartition(".")
        if entry.source[0] == "relay":  # the event cursor, the one writable global
            self.cursor = raw
            return None
        if entry.source[0] == "command":
            return self._command(entry.source[1], point, raw)
        try:
            value = setting_value(quantity, raw, raw if entry.type == "uint16"
                                  else as_float32(raw))
        except ValueError:
            return ILLEGAL_VALUE
        self.changes.setdefault(point, {})[quantity] = value
        return None

    def _command(self, action: str, point: str, raw: int) -> int | None:
        if action == "unlock":
            self.unlock = raw
        elif action == "preset":
            try:  # the request checks its theta (0..10; NaN is outside)
                self.requests.append(Request("preset", (point,), as_float32(raw)))
            except ValueError:
                return ILLEGAL_VALUE
            self.commanded.append("preset")
        elif raw:  # a coil written 1 (0 does nothing and needs nothing)
            kind = action.removesuffix("_all")
            self.requests.append(Request(kind, () if point == "relay" else (point,)))
            self.commanded.append(kind)
        return None


def setting_value(quantity: str, raw: int, value: float) -> Value:
    """The value of setting ``quantity`` written as ``raw`` (``value``: raw as its register's
    type reads it): an enumerated setting's word, a latch's bool, None for a limit a NaN
    switches off; ValueError for a code the setting does not have."""
    if quantity in ENUM_SETTINGS:
        if quantity in ENUM_WORDS:
            if raw not in ENUM_WORDS[quantity]:
                raise ValueError(f"{quantity}: no code {raw}")
            return ENUM_WORDS[quantity][raw]
        if quantity == "latch":
            if raw not in (0, 1):
                raise ValueError(f"latch: {raw} is neither 0 nor 1")
            return bool(raw)
        return value
    if quantity in SWITCHED_OFF_BY_NAN and math.isnan(value):
        return None  # NaN written: the limit switched off, as null in the file
    return value
