"""Who may change what over Modbus: access levels earned by a session, and lockout on wrong codes.

Pure logic with an injected clock (no sockets, no threads of its own), shared by the TCP write
worker and the RTU line:

- **Levels**, as relays' access levels: 0 reads (and moves the event cursor, read-side
  bookkeeping); 1 *operator* (reset, acknowledge); 2 *engineer* (settings, preset theta, clear
  statistics). Which level each command needs is configured (``access.levels``); settings need
  at least 1 whatever the file says.
- **A session** is one TCP connection (its slot and generation in the server, and its peer
  ``a.b.c.d:port``) or one RTU line and unit. Writing a level's code to ``relay.unlock`` gives
  that session the level for ``access.minutes``; writing 0 drops it; it also ends when the
  connection closes (``drop``). Another session holds nothing until it sends a code itself.
  A TLS session (Modbus/TCP Security) is *certified* with the level its certificate's role
  maps to (``certify``): it holds it for the connection's life (no minutes, not dropped by
  writing 0); a code can raise it meanwhile, as on any session.
- **Lockout** per peer (the address without the port, or the RTU line): after ``attempts``
  wrong codes in a row its codes (even the right one) are refused for 1, 2, 4 ... minutes
  (doubled at each lockout, capped at ``max_minutes``); a right code forgives the peer. One
  event per lockout with its count, never one per try (and lockouts of many peers at once
  aggregated like refusals).
- **Refusals** (no authority, wrong codes, local, allowlist) go through ``RefusalLog``: the
  first of a kind is recorded at once, the rest are counted and recorded as one event per
  window (10 s, doubling while the flood lasts, up to an hour), so a flood cannot push trip
  events out of the event ring.

Never records or logs a code.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

Record = Callable[..., object]
Clock = Callable[[], float]

READ, OPERATOR, ENGINEER = 0, 1, 2
LEVEL_NAMES = {READ: "read", OPERATOR: "operator", ENGINEER: "engineer"}
#: the level each command needs unless the configuration says otherwise
DEFAULT_LEVELS = {"reset": OPERATOR, "acknowledge": OPERATOR, "preset": ENGINEER,
                  "clear_statistics": ENGINEER, "settings": ENGINEER}
#: peers whose lockout state is kept at most (the oldest forgotten first)
MAX_PEERS = 4096


def level_text(level: int) -> str:
    return f"level {level} {LEVEL_NAMES[level]}"


@dataclass(frozen=True)
class Session:
    """One writer: ``key`` identifies it (("tcp", slot, generation), ("rtu", port, unit)),
    ``who`` names it in events ("10.0.0.5:50312", "rtu:/dev/ttyUSB0 unit 3") and ``peer`` is
    what lockout counts against (the address without the port; the RTU line)."""

    key: Hashable
    who: str
    peer: str

    @classmethod
    def tcp(cls, slot: int, generation: int, peer: str) -> Session:
        address = peer.rpartition(":")[0] or peer
        return cls(("tcp", slot, generation), peer, address)

    @classmethod
    def rtu(cls, port: str, unit: int) -> Session:
        who = f"rtu:{port} unit {unit}"
        return cls(("rtu", port, unit), who, f"rtu:{port}")


@dataclass(frozen=True)
class LockoutPolicy:
    attempts: int = 5  #: wrong codes in a row before a lockout
    first_minutes: float = 1.0  #: the first lockout; each next one doubles
    max_minutes: float = 60.0  #: the longest lockout

    def minutes(self, lockouts: int) -> float:
        """The length of the ``lockouts``-th lockout (1-based)."""
        return min(self.first_minutes * 2.0 ** (lockouts - 1), self.max_minutes)


@dataclass
class _Peer:
    wrong: int = 0  #: wrong codes since the last lockout (or the last right code)
    lockouts: int = 0  #: lockouts so far (the next one is longer)
    until: float = -math.inf  #: locked out until
    refused_locked: int = 0  #: codes refused while locked out, since the last lockout event


@dataclass
class Counters:
    """What the map and the metrics show (monotonic since start)."""

    wrong_codes: int = 0  #: codes refused as wrong
    lockouts: int = 0  #: lockouts begun
    refused_locked: int = 0  #: codes refused because their peer was locked out
    refused_writes: int = 0  #: writes refused for want of authority (or in local)
    accepted_codes: int = 0  #: codes that gave a session a level


class RefusalLog:
    """Aggregated refusal events: per kind, the first is recorded at once; the following ones
    within the window are counted and recorded as one event when the window ends (``flush``,
    called from a thread's idle loop, or at the next refusal). The window doubles each time it
    had to aggregate (10 s, 20 s ... ``longest``); a quiet window ends the aggregation (the
    next refusal is recorded at once) and halves the length the next flood starts with."""

    def __init__(self, record: Record | None, clock: Clock = time.monotonic,
                 window: float = 10.0, longest: float = 3600.0) -> None:
        self.record = record
        self.clock = clock
        self.window = window
        self.longest = longest
        self._lock = threading.Lock()
        #: kind -> [window start, window length, suppressed count, whom (up to 4), text]
        self._open: dict[str, list] = {}
        #: kind -> the window length its next flood starts with (halved by each quiet window)
        self._length: dict[str, float] = {}

    def refuse(self, kind: str, who: str, text: str, n: int = 1) -> None:
        """``n`` refusals of ``kind`` ("wrong code", "no authority", ...) by ``who``."""
        with self._lock:
            due = self._due(self.clock())
            state = self._open.get(kind)
            if state is None:
                length = self._length.get(kind, self.window)
                self._open[kind] = [self.clock(), length, 0, [], text]
                due.append(("system", "modbus", text if kind == "lockout"
                            else f"{text} (from {who})"))
                n -= 1
            if n:
                state = self._open[kind]
                state[2] += n
                if who not in state[3] and len(state[3]) < 4:
                    state[3].append(who)
                state[4] = text
        self._emit(due)

    def flush(self) -> None:
        with self._lock:
            due = self._due(self.clock())
        self._emit(due)

    def _due(self, now: float) -> list[tuple[str, str, str]]:
        due = []
        for kind, state in list(self._open.items()):
            start, length, count, whom, text = state
            if now - start < length:
                continue
            if count:
                more = " and others" if count > len(whom) else ""
                due.append(("system", "modbus", f"{count} more refused in {length:g} s: "
                            f"{kind} (from {', '.join(whom)}{more}; last: {text})"))
                state[:] = [now, min(2 * length, self.longest), 0, [], text]
            else:  # a quiet window: the next one is recorded at once
                del self._open[kind]
                self._length[kind] = max(self.window, length / 2)
        return due

    def _emit(self, due: list[tuple[str, str, str]]) -> None:
        if self.record is not None:
            for kind, source, text in due:
                self.record(kind, source, text)


@dataclass
class _Held:
    session: Session
    level: int
    until: float


@dataclass
class Authority:
    """The levels sessions hold, the codes, the lockout. Thread-safe (the TCP write worker
    and the RTU thread share one)."""

    codes: dict[int, int | None]  #: level -> its code (None: that level has no code)
    minutes: float = 10.0
    levels: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    clock: Clock = time.monotonic
    record: Record | None = None
    local: Callable[[], bool] | None = None  #: True while the local/remote switch is in local
    #: refusals aggregated into a few events (made from ``record`` and ``clock``)
    refusals: RefusalLog = field(init=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Hashable, _Held] = {}
        self._certified: dict[Hashable, _Held] = {}  #: until: inf, for the connection's life
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self.counters = Counters()
        self.refusals = RefusalLog(self.record, self.clock)

    # ------------------------------------------------------------ queries

    def level(self, session: Session | None) -> int:
        """The level ``session`` holds now (0 when none or expired)."""
        if session is None:
            return READ
        with self._lock:
            certified = self._certified.get(session.key)
            base = certified.level if certified is not None else READ
            held = self._held.get(session.key)
            if held is None:
                return base
            if self.clock() >= held.until:
                del self._held[session.key]
                expired = held
            else:
                return max(base, held.level)
        self._note(f"{level_text(expired.level)} of {session.who} expired after "
                   f"{self.minutes:g} min")
        return base

    def is_local(self) -> bool:
        return self.local is not None and bool(self.local())

    def needed(self, what: str) -> int:
        """The level ``what`` (a command or "settings") needs."""
        return self.levels.get(what, ENGINEER)

    @property
    def engineer_held(self) -> bool:
        """Some session holds level 2 now (the map's ``relay.unlocked``)."""
        now = self.clock()
        with self._lock:
            return any(h.level >= ENGINEER and now < h.until
                       for h in (*self._held.values(), *self._certified.values()))

    @property
    def sessions(self) -> int:
        now = self.clock()
        with self._lock:
            keys = {k for k, h in self._held.items() if now < h.until}
            return len(keys | {k for k, h in self._certified.items() if h.level > READ})

    def locked_out(self, peer: str) -> bool:
        with self._lock:
            state = self._peers.get(peer)
            return state is not None and self.clock() < state.until

    # ------------------------------------------------------------ the code write

    def offer(self, session: Session, value: int) -> bool:
        """A write of ``value`` to ``relay.unlock`` by ``session``: 0 drops its level, a
        level's code gives it that level, anything else is a wrong code. True when accepted."""
        if value == 0:
            with self._lock:
                held = self._held.pop(session.key, None)
            if held is not None:
                self._note(f"{level_text(held.level)} of {session.who} dropped (0 written)")
            return True
        now = self.clock()
        lockout_text = None
        with self._lock:
            peer = self._peer(session.peer)
            if now < peer.until:
                peer.refused_locked += 1
                self.counters.refused_locked += 1
                left = (peer.until - now) / 60.0
                refused = ("code refused: locked out", f"code refused: {session.peer} is "
                           f"locked out for {left:.1f} more min")
                level = None
            else:
                level = self._match(value)
                if level is None:
                    peer.wrong += 1
                    self.counters.wrong_codes += 1
                    refused = ("wrong code", f"wrong code ({peer.wrong} of "
                               f"{self.lockout.attempts} before a lockout)")
                    if peer.wrong >= self.lockout.attempts:
                        peer.lockouts += 1
                        self.counters.lockouts += 1
                        length = self.lockout.minutes(peer.lockouts)
                        peer.until = now + 60.0 * length
                        lockout_text = (f"{session.peer} locked out for {length:g} min after "
                                        f"{peer.wrong} wrong codes (lockout {peer.lockouts}"
                                        + (f"; {peer.refused_locked} codes refused during the "
                                           "last" if peer.refused_locked else "") + ")")
                        peer.wrong = peer.refused_locked = 0
                        refused = None  # the lockout's own event says it
                else:
                    del self._peers[session.peer]  # a right code forgives the peer
                    self._held[session.key] = _Held(session, level, now + 60.0 * self.minutes)
                    self.counters.accepted_codes += 1
                    refused = None
        if lockout_text is not None:  # many peers locked out at once: aggregated too
            self.refusals.refuse("lockout", session.peer, lockout_text)
        if refused is not None:
            self.refusals.refuse(refused[0], session.who, refused[1])
            return False
        if level is None:
            return False
        self._note(f"{level_text(level)} granted to {session.who} for {self.minutes:g} min")
        return True

    def _match(self, value: int) -> int | None:
        """The level whose code ``value`` is (compared in constant time), else None."""
        found = None
        for level in (ENGINEER, OPERATOR):
            code = self.codes.get(level)
            if code is not None and hmac.compare_digest(str(code).encode(),
                                                        str(value).encode()):
                found = found or level
        return found

    def _peer(self, name: str) -> _Peer:
        state = self._peers.get(name)
        if state is None:
            state = self._peers[name] = _Peer()
            now = self.clock()
            while len(self._peers) > MAX_PEERS:  # forget the oldest peer not locked out
                free = next((k for k, p in self._peers.items() if p.until <= now), None)
                if free is None:
                    break
                del self._peers[free]
        else:
            self._peers.move_to_end(name)
        return state

    # ------------------------------------------------------------ writes

    def refuse_write(self, session: Session, what: str, need: int) -> str | None:
        """None when ``session`` may do ``what`` (needing level ``need``); else the reason,
        recorded (aggregated)."""
        if self.is_local():
            reason = "the relay is in local: remote writes are refused"
            kind = "local"
        else:
            have = self.level(session)
            if have >= need:
                return None
            reason = f"{what} needs {level_text(need)}, the session has {level_text(have)}"
            kind = "no authority"
        with self._lock:
            self.counters.refused_writes += 1
        self.refusals.refuse(kind, session.who, f"write refused: {reason}")
        return reason

    def certify(self, session: Session, level: int) -> None:
        """``session`` holds ``level`` for its connection's life (a TLS client's role, told
        by its certificate): it never expires and writing 0 does not drop it; ``drop`` ends
        it. Idempotent; recorded by the caller, who knows the certificate."""
        with self._lock:
            self._certified[session.key] = _Held(session, level, math.inf)

    def certified(self, session_key: Hashable) -> bool:
        with self._lock:
            return session_key in self._certified

    def drop(self, session_key: Hashable, why: str = "connection closed") -> None:
        """The session is gone (its connection closed): its level with it."""
        with self._lock:
            held = self._held.pop(session_key, None)
            certified = self._certified.pop(session_key, None)
        if held is not None:
            self._note(f"{level_text(held.level)} of {held.session.who} ended: {why}")
        if certified is not None and certified.level > READ:
            self._note(f"{level_text(certified.level)} of {certified.session.who} (its "
                       f"certificate) ended: {why}")

    def held_keys(self) -> list[Hashable]:
        """The sessions holding a level (by code or by certificate)."""
        with self._lock:
            return list(dict.fromkeys([*self._held, *self._certified]))

    def tick(self) -> None:
        """Idle work: expire levels (recorded), flush aggregated refusals."""
        now = self.clock()
        with self._lock:
            gone = [h for h in self._held.values() if now >= h.until]
            for h in gone:
                del self._held[h.session.key]
        for h in gone:
            self._note(f"{level_text(h.level)} of {h.session.who} expired after "
                       f"{self.minutes:g} min")
        self.refusals.flush()

    def _note(self, text: str) -> None:
        if self.record is not None:
            self.record("system", "unlock", text)
