"""The Modbus master against simulated devices over real TCP on 127.0.0.1 and RTU over a
socat pty pair: values, coalesced requests, the thermal gateway's setup, faults, reconnects."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from softrelay.core import Quality
from softrelay.field.modbus.master import DeviceMap, plan, rtu_link, sweep, tcp_link
from softrelay.field.modbus.profiles import register_map
from softrelay.field.modbus.registers import Register

from support.twins import ALL, PLANT, rtu_bus, run, tcp_bus, twin_server

GOOD, IO, OOR = Quality.GOOD, Quality.IO_ERROR, Quality.OUT_OF_RANGE
SENTINEL = Quality.SENTINEL


@pytest.fixture
def gateway():
    bus = tcp_bus()
    server = twin_server(bus)
    port = server.start_tcp()
    link = tcp_link(bus, port=port)
    yield bus, server, link
    run(link.close())
    server.stop()


def by_address(readings):
    return dict(zip(ALL, readings, strict=True))


def test_values_are_read_decoded_and_scaled(gateway):
    _, _, link = gateway
    got = by_address(run(link.read(ALL)))
    assert got["meter.current.a"] == (pytest.approx(101.5), GOOD)  # float32, FC04
    assert got["meter.current.b"] == (pytest.approx(99.25), GOOD)
    # the current phasors' angles: -phase angle on a 0 / -120 / +120 voltage reference
    assert [got[f"meter.angle.{p}"][0] for p in "abc"] == pytest.approx([-25.0, -145.0, 95.0])
    assert got["gw.ch1"] == (pytest.approx(61.2), GOOD)  # int16 x 0.1, FC04
    assert got["gw.ch3"] == (pytest.approx(-5.3), GOOD)  # negative: two's complement
    assert got["gw.emissivity"] == (pytest.approx(0.55), GOOD)


def test_requests_are_coalesced_one_per_device_and_table(gateway):
    _, server, link = gateway
    run(link.read(ALL))  # first read also sets the gateway up (2 writes, 2 read-backs)
    before = link.requests
    run(link.read(ALL))
    # meter: currents 0x06..0x0B and angles 0x24..0x29 are 2 requests (gap); gateway: channels
    # (input) and emissivity (holding): 2 requests
    assert link.requests - before == 4
    assert server.by_name["meter"].requests >= 2


def test_plan_respects_the_device_limit_and_gaps():
    regs = {f"v{i}": Register(2 * i, "float32", table="input") for i in range(100)}
    device = DeviceMap("m", 1, regs, max_read=80)
    requests = plan({"m": device}, [f"m.v{i}" for i in range(100)])
    assert [(r.start, r.count) for r in requests] == [(0, 80), (80, 80), (160, 40)]
    assert sorted(i for r in requests for i, _ in r.members) == list(range(100))
    holes = DeviceMap("h", 1, {"a": Register(0), "b": Register(3)}, max_gap=2)
    assert [(r.start, r.count) for r in plan({"h": holes}, ["h.a", "h.b"])] == [(0, 4)]
    holes.max_gap = 1
    assert len(plan({"h": holes}, ["h.a", "h.b"])) == 2


def test_the_sdm630_profile_never_asks_more_than_the_meter_answers():
    device = DeviceMap.from_config(tcp_bus().devices[0])
    assert device.max_read == 80
    assert register_map(tcp_bus().devices[0])["current.a"].address == 6


def test_the_gateway_is_set_up_and_verified_at_connect(gateway):
    _, server, link = gateway
    twin = server.by_name["gw"]
    assert twin.kept == {4005: 95, 4006: 0}  # factory state
    run(link.read(["gw.ch1"]))
    assert twin.kept == {4005: 55, 4006: 1}  # the seed's calibration: 0.55 x 100, 1 decimal


def test_a_gateway_left_at_factory_emissivity_reads_the_surface_wrongly():
    bus = tcp_bus()
    server = twin_server(bus)
    # the same plant read through a master that does not set the gateway up
    link = tcp_link(bus, port=server.start_tcp())
    link.devices["gw"].setup = []
    try:
        value, quality = run(link.read(["gw.ch1"]))[0]
        assert quality == GOOD and value < PLANT["ta"] - 5.0  # e = 0.95 set, 0.55 true
    finally:
        run(link.close())
        server.stop()


def test_a_setup_that_does_not_verify_marks_the_device_not_the_others(gateway):
    _, server, link = gateway
    twin = server.by_name["gw"]
    original = twin.write
    twin.write = lambda start, values: original(start, [v + 1 for v in values])  # bad EEPROM
    got = by_address(run(link.read(ALL)))
    assert got["gw.ch1"][1] == IO and got["meter.current.a"][1] == GOOD
    assert "read back 56, wrote 55" in link.last_error
    twin.write = original
    assert by_address(run(link.read(ALL)))["gw.ch1"][1] == GOOD  # set up on the next poll


def test_setup_registers_are_written_only_where_they_differ_at_each_reconnect(gateway):
    """The gateway's emissivity and scaling live in EEPROM: a flapping link must not write
    them again and again."""
    _, server, link = gateway
    twin = server.by_name["gw"]
    writes: list[tuple[int, list[int]]] = []
    original = twin.write
    twin.write = lambda start, values: (writes.append((start, list(values))),
                                        original(start, values))[1]
    run(link.read(ALL))  # set up on the first connection
    first = list(writes)
    for _ in range(3):  # the link flaps: reconnect and set up again, three times
        link._drop()
        got = by_address(run(link.read(ALL)))
        assert got["gw.ch1"][1] == GOOD, link.last_error
    assert writes == first, "setup registers written again at a reconnect"
    assert link.connects >= 4
    original(4005, [90])  # someone changed the emissivity at the head
    link._drop()
    assert by_address(run(link.read(ALL)))["gw.ch1"][1] == GOOD
    assert writes[len(first):] == [(4005, [55])], "only the register that differed"


def test_an_unmapped_register_is_an_exception_for_that_request_only(gateway):
    _, _, link = gateway
    link.devices["meter"].registers["bogus"] = Register(0x300, "float32", table="input")
    got = run(link.read(["meter.bogus", "meter.current.a", "gw.ch1"]))
    assert got[0][1] == IO and got[1][1] == GOOD and got[2][1] == GOOD
    assert "exception 0x02" in link.last_error


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("fault", "expected"),
    [("nack", IO), ("refused", IO), ("slow", IO), ("garbage", IO)],
)
def test_a_failing_device_behind_the_gateway_fails_alone(gateway, fault, expected):
    _, server, link = gateway
    run(link.read(ALL))
    server.inject("gw", fault, delay=0.5)
    got = by_address(run(link.read(ALL)))
    assert got["gw.ch1"][1] == expected and got["gw.emissivity"][1] == expected
    assert all(got[a][1] == GOOD for a in ALL if a.startswith("meter."))
    server.clear()
    got = by_address(run(link.read(ALL)))
    assert all(q == GOOD for _, q in got.values()), link.last_error


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("sentinel", lambda v, q: q == SENTINEL and math.isnan(v)),  # -32768: no reading
        ("noisy", lambda v, q: q == GOOD and v != pytest.approx(PLANT["ta"], abs=0.05)),
    ],
)
def test_value_faults_reach_the_one_quantity(gateway, fault, check):
    _, server, link = gateway
    server.inject("gw.ch1", fault, sigma=5.0)
    got = by_address(run(link.read(ALL)))
    assert check(*got["gw.ch1"])
    assert got["gw.ch2"] == (pytest.approx(40.5), GOOD)


def test_a_meter_sentinel_is_out_of_range_not_a_current(gateway):
    """The SDM630 declares no sentinel: -32768.0 A is a float outside the current's valid
    range (the gateway's int16 -32768 is its declared no-reading value: SENTINEL)."""
    _, server, link = gateway
    server.inject("meter.current.a", "sentinel")
    value, quality = by_address(run(link.read(ALL)))["meter.current.a"]
    assert quality == OOR and math.isnan(value)  # -32768 A would be a false trip


def test_a_stuck_value_stays_stuck_while_the_plant_moves():
    bus = tcp_bus()
    plant = dict(PLANT)
    server = twin_server(bus, plant)
    link = tcp_link(bus, port=server.start_tcp())
    try:
        server.inject("gw.ch1", "stuck")
        first = run(link.read(["gw.ch1"]))[0]
        plant["ta"] = 90.0
        assert run(link.read(["gw.ch1"]))[0] == first
        server.clear("gw.ch1")
        assert run(link.read(["gw.ch1"]))[0][0] == pytest.approx(90.0)
    finally:
        run(link.close())
        server.stop()


@pytest.mark.e2e
def test_refused_gateway_backs_off_then_reconnects(gateway):
    _, server, link = gateway
    run(link.read(ALL))
    server.inject("*", "refused")
    attempts = link.connect_attempts

    async def hammer():
        for _ in range(60):  # 60 polls over about 0.7 s
            got = await link.read(ALL)
            assert all(q == IO for _, q in got)
            await asyncio.sleep(0.01)

    run(hammer())
    assert link.backoff == pytest.approx(0.4)  # 0.1, 0.2, 0.4 (max_backoff), 0.4 ...
    assert 2 <= link.connect_attempts - attempts <= 7  # not one per poll
    assert link.last_error.startswith("refused: connect: "), link.last_error
    server.clear()
    time.sleep(0.45)
    got = run(link.read(ALL))
    assert all(q == GOOD for _, q in got), link.last_error
    assert link.connects == 2


@pytest.mark.e2e
def test_a_timeout_never_lets_a_late_answer_through(gateway):
    """The late answer of a slow request must not be taken for the next request's."""
    _, server, link = gateway
    run(link.read(ALL))
    server.inject("meter", "slow", delay=0.3)
    asked = server.by_name["meter"].requests
    got = run(link.read(["meter.current.a", "meter.angle.a", "gw.ch1"]))
    assert got[0][1] == IO and got[1][1] == IO and got[2] == (pytest.approx(61.2), GOOD)
    assert server.by_name["meter"].requests - asked == 1  # silent: asked once, not twice
    server.clear()
    time.sleep(0.35)  # the late answer arrives on the dropped connection
    time.sleep(0.05)
    got = run(link.read(["meter.current.a", "gw.ch1", "gw.ch2"]))
    assert got == [(pytest.approx(101.5), GOOD), (pytest.approx(61.2), GOOD),
                   (pytest.approx(40.5), GOOD)]


def test_a_meter_fed_with_phasor_angles_codes_its_own_phase_angles():
    """The plant knows current phasors; the meter reports each current's lag behind its own
    phase voltage; the master turns that back into the phasors."""
    bus = tcp_bus()
    angles = {"aa": -30.0, "ab": -150.0, "ac": 90.0}
    bus.devices[0].simulate.clear()
    bus.devices[0].simulate.update({f"angle.{p}": f"a{p}" for p in "abc"})
    server = twin_server(bus, angles)
    link = tcp_link(bus, port=server.start_tcp())
    try:
        got = run(link.read([f"meter.{q}.{p}" for q in ("angle", "phase_angle") for p in "abc"]))
        assert [v for v, _ in got] == pytest.approx([-30.0, -150.0, 90.0, 30.0, 30.0, 30.0])
    finally:
        run(link.close())
        server.stop()


@pytest.mark.e2e
def test_many_gateways_are_swept_concurrently():
    buses, servers, links = [], [], []
    for _ in range(4):
        bus = tcp_bus()
        server = twin_server(bus)
        server.inject("*", "slow", delay=0.1)  # each request answered 100 ms late
        links.append(tcp_link(bus.model_copy(update={"timeout": 0.5}), port=server.start_tcp()))
        buses.append(bus)
        servers.append(server)
    try:
        batches = [["meter.current.a"]] * 4
        for link in links:
            link.devices["gw"].setup = []
        t = time.perf_counter()
        concurrent = run(sweep(links, batches))
        t_concurrent = time.perf_counter() - t
        t = time.perf_counter()
        sequential = run(sweep(links, batches, concurrent=False))
        t_sequential = time.perf_counter() - t
        assert concurrent == sequential == [[(pytest.approx(101.5), GOOD)]] * 4
        # four 100 ms answers: together about 0.1 s, one after another about 0.4 s
        assert t_concurrent < 0.3 < t_sequential
    finally:
        for link, server in zip(links, servers, strict=True):
            run(link.close())
            server.stop()


@pytest.mark.e2e
def test_rtu_over_a_socat_pty_pair(pty_pair):
    end_a, end_b = pty_pair
    bus = rtu_bus(end_b)
    server = twin_server(bus)
    server.start_rtu(end_a)
    link = rtu_link(bus)
    try:
        got = by_address(run(link.read(ALL)))
        assert got["meter.current.a"] == (pytest.approx(101.5), GOOD)
        assert got["gw.ch3"] == (pytest.approx(-5.3), GOOD)
        assert server.by_name["gw"].kept == {4005: 55, 4006: 1}
        server.inject("gw", "nack")  # an RTU device that fails is silent
        got = by_address(run(link.read(ALL)))
        assert got["gw.ch1"][1] == IO and got["meter.current.a"][1] == GOOD
        server.clear()
        server.inject("meter", "garbage")  # EMI: the CRC fails
        got = by_address(run(link.read(ALL)))
        assert got["meter.current.a"][1] == IO and got["gw.ch1"][1] == GOOD
    finally:
        run(link.close())
        server.stop()
