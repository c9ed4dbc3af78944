"""Access levels earned by a session, lockout and aggregated refusals (``modbus.authority``),
through the writes a Modbus request makes (``SlaveLogic`` + ``RelayWrites``), on an injected
clock: who may reset, preset and set, for how long, and what a brute force costs."""

from __future__ import annotations

import struct

import pytest

from softrelay.config import load
from softrelay.modbus.authority import Authority, LockoutPolicy, RefusalLog, Session
from softrelay.modbus.pdu import SlaveLogic
from softrelay.modbus.register_image import empty_image
from softrelay.modbus.regmap import RegisterMap
from softrelay.modbus.writes import REFUSED, RelayWrites
from softrelay.relay.commands import CommandQueue
from softrelay.relay.settings_changes import SettingsQueue

CONFIG = load()
MAP = RegisterMap(CONFIG)
LOGIC = SlaveLogic(MAP)
OPERATOR, ENGINEER = 4321, 271828
A = MAP.get


def f32(value: float) -> tuple[int, int]:
    return struct.unpack(">HH", struct.pack(">f", value))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Relay:
    """The write path of a relay without a scan: the queues, the authority, the events."""

    def __init__(self, levels: dict | None = None, local=None) -> None:
        thermal = CONFIG.thermal_points
        busbar = CONFIG.busbar_points
        self.events: list[tuple] = []
        record = lambda *a: self.events.append(a)  # noqa: E731
        self.clock = Clock()
        self.commands = CommandQueue([p.name for p in thermal], record=record)
        self.settings = SettingsQueue([(p.name, p.settings) for p in thermal],
                                      [(p.name, p.settings) for p in busbar], record)
        kwargs = {"levels": levels} if levels is not None else {}
        self.authority = Authority({1: OPERATOR, 2: ENGINEER}, 10.0, clock=self.clock,
                                   record=record, local=local, **kwargs)
        self.writes = RelayWrites(self.commands, self.settings, self.authority, record)
        self.image = empty_image(MAP)

    def ask(self, session: Session, *fields: int, layout: str) -> bytes:
        return LOGIC.respond(struct.pack(layout, *fields), self.image,
                             self.writes.for_session(session))

    def code(self, session: Session, code: int) -> bytes:
        return self.ask(session, 16, A("relay.unlock").address, 2, 4, code >> 16,
                        code & 0xFFFF, layout=">BHHBHH")

    def preset(self, session: Session, theta: float, point: str = "motor1") -> bytes:
        return self.ask(session, 16, A(f"{point}.preset_theta").address, 2, 4, *f32(theta),
                        layout=">BHHBHH")

    def reset(self, session: Session) -> bytes:
        return self.ask(session, 5, A("motor1.reset").address, 0xFF00, layout=">BHH")

    def k2(self, session: Session, value: float) -> bytes:
        return self.ask(session, 16, A("motor1.k2").address, 2, 4, *f32(value),
                        layout=">BHHBHH")

    def texts(self) -> list[str]:
        return [e[2] for e in self.events]


DCS = Session.tcp(0, 1, "10.0.0.5:50312")
OTHER = Session.tcp(1, 2, "10.0.0.9:40000")
REFUSAL = bytes([0x90, REFUSED])


def ok(answer: bytes) -> bool:
    return not answer[0] & 0x80


def test_level_0_reads_and_is_refused_every_command_and_setting():
    r = Relay()
    assert r.preset(DCS, 10.0) == REFUSAL  # the finding: a preset defeats the replica
    assert r.reset(DCS) == bytes([0x85, REFUSED])
    assert r.k2(DCS, 4.0) == REFUSAL
    clear = A("relay.clear_statistics").address
    assert r.ask(DCS, 5, clear, 0xFF00, layout=">BHH") == bytes([0x85, REFUSED])
    assert not r.commands._pending and not r.settings._pending
    cursor = A("relay.event_cursor").address  # read-side bookkeeping: level 0
    assert ok(r.ask(DCS, 16, cursor, 2, 4, 0, 5, layout=">BHHBHH"))
    assert r.ask(DCS, 5, A("motor1.reset").address, 0, layout=">BHH")[0] == 5  # 0 does nothing
    refused = [t for t in r.texts() if "refused" in t]
    assert refused and "10.0.0.5:50312" in refused[0] and "level 0" in refused[0]


def test_the_operator_resets_and_acknowledges_the_engineer_also_presets_and_sets():
    r = Relay()
    assert ok(r.code(DCS, OPERATOR))
    assert ok(r.reset(DCS))
    assert r.preset(DCS, 0.0) == REFUSAL
    assert r.k2(DCS, 4.0) == REFUSAL
    (request,) = r.commands._pending
    assert request.source == "modbus 10.0.0.5:50312, level 1 operator"
    assert ok(r.code(DCS, ENGINEER))
    assert ok(r.preset(DCS, 0.5)) and ok(r.k2(DCS, 4.0)) and ok(r.reset(DCS))
    (point, settings, source), = r.settings._pending
    assert point == "motor1"
    assert source == "modbus 10.0.0.5:50312, level 2 engineer" and settings.k2 == 4.0
    assert any("level 2 engineer granted to 10.0.0.5:50312" in t for t in r.texts())
    assert not any(str(ENGINEER) in str(e) or str(OPERATOR) in str(e) for e in r.events)


def test_the_levels_are_configurable_per_relay():
    r = Relay(levels={"reset": 0, "acknowledge": 0, "preset": 2, "clear_statistics": 1,
                      "settings": 2})
    assert ok(r.reset(DCS))  # this plant resets from the DCS without a code, on purpose
    assert r.preset(DCS, 0.0) == REFUSAL


def test_authority_belongs_to_the_session_that_earned_it():
    r = Relay()
    assert ok(r.code(DCS, ENGINEER))
    assert r.k2(OTHER, 4.0) == REFUSAL  # another connection never sent the code
    assert r.preset(OTHER, 0.0) == REFUSAL
    same_slot_later = Session.tcp(0, 3, "10.0.0.5:50400")  # the slot reused by a new one
    assert r.preset(same_slot_later, 0.0) == REFUSAL
    assert ok(r.preset(DCS, 0.0))


def test_authority_expires_after_the_minutes_drops_on_0_and_on_disconnect():
    r = Relay()
    assert ok(r.code(DCS, ENGINEER))
    r.clock.t += 599.0
    assert ok(r.k2(DCS, 4.0))
    r.clock.t += 2.0  # ten minutes after the code
    assert r.k2(DCS, 4.0) == REFUSAL
    assert any("level 2 engineer of 10.0.0.5:50312 expired after 10 min" in t
               for t in r.texts())
    assert ok(r.code(DCS, ENGINEER))
    assert ok(r.code(DCS, 0))  # writing 0 drops it
    assert r.k2(DCS, 4.0) == REFUSAL
    assert ok(r.code(DCS, ENGINEER))
    r.authority.drop(DCS.key)  # what the write worker does when the connection closes
    assert r.k2(DCS, 4.0) == REFUSAL
    assert any("of 10.0.0.5:50312 ended: connection closed" in t for t in r.texts())
    assert not r.authority.engineer_held


def test_five_wrong_codes_lock_the_peer_out_for_1_2_4_minutes_one_event_each():
    r = Relay()
    for k in range(5):
        assert r.code(DCS, 100000 + k) == REFUSAL
    assert r.code(DCS, ENGINEER) == REFUSAL  # the right code too, while locked out
    other_port = Session.tcp(3, 9, "10.0.0.5:50999")  # a new connection from the same host
    assert r.code(other_port, ENGINEER) == REFUSAL
    assert ok(r.code(OTHER, ENGINEER))  # another peer is not locked out
    lockouts = [t for t in r.texts() if "locked out for" in t and "after" in t]
    assert lockouts == ["10.0.0.5 locked out for 1 min after 5 wrong codes (lockout 1)"]
    r.clock.t += 61.0
    for k in range(5):
        assert r.code(DCS, 200000 + k) == REFUSAL
    r.clock.t += 119.0
    assert r.code(DCS, ENGINEER) == REFUSAL  # the second lockout is 2 min
    r.clock.t += 2.0
    for k in range(5):
        r.code(DCS, 300000 + k)
    lockouts = [t for t in r.texts() if "locked out for" in t and "after" in t]
    assert [t.split(" after")[0] for t in lockouts] == [
        "10.0.0.5 locked out for 1 min", "10.0.0.5 locked out for 2 min",
        "10.0.0.5 locked out for 4 min"]
    assert "2 codes refused during the last" in lockouts[1]
    assert r.authority.counters.lockouts == 3 and r.authority.counters.wrong_codes == 15
    r.clock.t += 241.0
    assert ok(r.code(DCS, ENGINEER))  # a right code after the lockout forgives the peer


def test_lockouts_are_capped():
    policy = LockoutPolicy(5, 1.0, 60.0)
    assert [policy.minutes(k) for k in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_brute_force_of_a_6_digit_code_takes_years():
    """An attacker sends codes as fast as the relay takes them, waits out every lockout and
    tries again, on the injected clock: count the codes tried in 30 simulated days."""
    r = Relay()
    day, tried, code = 86400.0, 0, 100000
    end = r.clock.t + 30 * day
    while r.clock.t < end:
        peer = r.authority._peers.get(DCS.peer)
        if peer is not None and r.clock.t < peer.until:
            r.clock.t = peer.until  # the attacker waits exactly until the lockout ends
            continue
        assert r.code(DCS, code) == REFUSAL  # never the right one
        tried += 1
        code += 1
        r.clock.t += 0.0003  # ~3 700 codes/s, as measured on one connection
    per_day = tried / 30
    expected_days = (900_000 / 2) / per_day  # on average half of the 6-digit codes
    assert expected_days > 365 * 5, (tried, expected_days)


@pytest.mark.e2e
def test_a_flood_of_refusals_makes_a_few_events_not_one_each():
    """10 000 wrong codes and 10 000 unauthorised presets from 500 peers in an hour: the
    event ring (1 024) would have lost the trips; aggregated it holds a few dozen events."""
    r = Relay()
    r.events.append(("pickup", "motor1.trip", "trip"))
    for k in range(20_000):
        session = Session.tcp(k % 64, k, f"10.1.{k % 500 // 250}.{k % 250}:{1024 + k}")
        if k % 2:
            r.code(session, 500000 + k)
        else:
            r.preset(session, 10.0)
        r.clock.t += 3600.0 / 20_000
        if k % 100 == 0:
            r.authority.tick()
    r.clock.t += 7200.0
    r.authority.tick()
    refused = [t for t in r.texts() if "refused" in t or "wrong code" in t]
    assert len(r.events) < 50, len(r.events)  # 44: one per 500 refusals
    counted = 0
    for text in refused:  # the counts add up: nothing goes unsaid
        if " more refused in " in text:
            counted += int(text.split(" ")[0])
        else:
            counted += 1
    lockouts = [t for t in r.texts() if "locked out for" in t and " after " in t]
    assert counted + 5 * len(lockouts) >= 20_000 - 5 * 500  # minus those in a lockout's count
    assert r.events[0] == ("pickup", "motor1.trip", "trip")


def test_refusal_windows_double_while_a_flood_lasts_and_reset_after_quiet():
    events, clock = [], Clock()
    log = RefusalLog(lambda *e: events.append(e[2]), clock, window=10.0, longest=40.0)
    for _ in range(200):  # 200 s of refusals, one a second
        log.refuse("no authority", "x:1", "write refused")
        clock.t += 1.0
    log.flush()
    summaries = [t for t in events if " more refused in " in t]
    assert [t.split(" more refused in ")[1].split(" s")[0] for t in summaries][:4] == [
        "10", "20", "40", "40"]
    for _ in range(2):  # the last window's summary, then a quiet window
        clock.t += 50.0
        log.flush()
    events.clear()
    log.refuse("no authority", "x:1", "write refused")
    assert events == ["write refused (from x:1)"]  # after a quiet window: at once


def test_in_local_every_remote_write_is_refused_and_says_why():
    local = [True]
    r = Relay(local=lambda: local[0])
    assert r.code(DCS, ENGINEER) == REFUSAL
    assert r.reset(DCS) == bytes([0x85, REFUSED])
    assert any("in local: remote writes are refused" in t for t in r.texts())
    cursor = A("relay.event_cursor").address
    assert ok(r.ask(DCS, 16, cursor, 2, 4, 0, 5, layout=">BHHBHH"))
    local[0] = False
    assert ok(r.code(DCS, ENGINEER)) and ok(r.preset(DCS, 1.0))
    local[0] = True
    assert r.preset(DCS, 1.0) == REFUSAL  # the level held does not pass the switch


@pytest.mark.parametrize("who", [Session.rtu("/dev/ttyUSB0", 3)])
def test_an_rtu_line_is_one_session_named_by_port_and_unit(who):
    r = Relay()
    assert ok(r.code(who, OPERATOR)) and ok(r.reset(who))
    assert r.commands._pending[0].source == "modbus rtu:/dev/ttyUSB0 unit 3, level 1 operator"
    for k in range(5):
        r.code(who, 7 + k)
    assert any(t.startswith("rtu:/dev/ttyUSB0 locked out") for t in r.texts())
