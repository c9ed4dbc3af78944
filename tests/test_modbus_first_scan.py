"""Before the first scan's snapshot is published the slave answers every read with exception 06
(server device busy), over real Modbus/TCP and RTU: a DCS never reads the all-zero image
(theta 0, flags 0, healthy 0) of a relay that has computed nothing yet. After the first scan:
the scan's values."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pyModbusTCP.client import ModbusClient

from softrelay.image.snapshot import published
from softrelay.modbus.pdu import SlaveLogic
from softrelay.modbus.protocol import SERVER_BUSY
from softrelay.modbus.regmap import MAP_VERSION

from support.configs import DEMO
from support.modbus import f32, make_relay, mbap, raw

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

BUSY = SERVER_BUSY


@pytest.fixture
def unscanned(tmp_path):
    """A started relay, slave serving, whose first scan has not run (it runs on ``step``)."""
    relay = make_relay(tmp_path)
    relay.start(companion=False)
    assert not published(relay.snapshot)
    yield relay
    relay.stop()


def test_reads_before_the_first_scan_answer_busy_then_the_scans_values(unscanned):
    relay, regmap = unscanned, unscanned.regmap
    port = relay.slave.port
    theta_trip = regmap.get("motor1.theta_trip").address
    healthy = regmap.get("relay.healthy", "discrete_input").address
    with ModbusTcpClient("127.0.0.1", port=port, timeout=2) as client:
        for answer in (client.read_input_registers(0, count=28, device_id=1),
                       client.read_holding_registers(theta_trip, count=2, device_id=1),
                       client.read_discrete_inputs(healthy, count=2, device_id=1),
                       client.read_coils(regmap.get("motor1.reset").address, count=2,
                                         device_id=1),
                       client.read_holding_registers(regmap.get("motor1.status",
                                                     "holding_register").address, count=4,
                                                     device_id=1)):
            assert answer.isError() and answer.exception_code == BUSY, answer
        unmapped = client.read_input_registers(96, count=1, device_id=1)
        assert unmapped.isError() and unmapped.exception_code == 2  # address before busy
    independent = ModbusClient(host="127.0.0.1", port=port, unit_id=1, timeout=2.0)
    try:  # pyModbusTCP: another implementation of the client side
        assert independent.read_input_registers(0, 10) is None
        assert independent.last_except == BUSY
        assert independent.read_holding_registers(theta_trip, 2) is None
        assert independent.last_except == BUSY
        relay.loop.step()  # the first scan publishes its snapshot
        assert published(relay.snapshot)
        words = independent.read_holding_registers(theta_trip, 2)
        assert words is not None and f32(words) == pytest.approx(1.2)
        assert independent.read_input_registers(0, 1) == [MAP_VERSION]
    finally:
        independent.close()
    with ModbusTcpClient("127.0.0.1", port=port, timeout=2) as client:
        scans = client.read_input_registers(regmap.get("relay.scans").address, count=2,
                                            device_id=1)
        assert not scans.isError() and scans.registers == [0, 1]
        bits = client.read_discrete_inputs(healthy, count=1, device_id=1)
        assert not bits.isError() and bits.bits[0] == relay.watchdog.healthy


def test_a_read_write_before_the_first_scan_is_refused_whole(unscanned):
    """Function 23 writes, then reads: busy refuses it before anything is written."""
    relay = unscanned
    cursor = relay.regmap.get("relay.event_cursor").address
    pdu = struct.pack(">BHHHHBHH", 23, cursor, 2, cursor, 2, 4, 0, 5)
    assert raw(relay.slave.port, mbap(pdu))[7:] == bytes([23 | 0x80, BUSY])
    assert relay.event_window.cursor == 0
    relay.loop.step()
    reply = raw(relay.slave.port, mbap(pdu))[7:]  # written; the read is of the last scan
    assert reply == bytes([23, 4, 0, 0, 0, 0]) and relay.event_window.cursor == 5


@pytest.fixture(scope="module")
def unpublished(tmp_path_factory):
    relay = make_relay(tmp_path_factory.mktemp("unpublished"))
    relay.start(companion=False)
    yield relay
    relay.stop()


@given(st.sampled_from([1, 2, 3, 4]), st.integers(0, 4500), st.integers(0, 130),
       st.binary(max_size=3))
@settings(max_examples=300, deadline=None)
def test_before_the_first_scan_compiled_reads_answer_as_the_specification(
        unpublished, function, start, count, tail):
    """Quantity (03), then address (02), then busy (06): in C as in the specification."""
    assert not published(unpublished.snapshot)
    logic = SlaveLogic(unpublished.regmap)
    pdu = struct.pack(">BHH", function, start, count) + tail
    assert unpublished.slave.server.read_pdu(pdu) == logic.respond(pdu, None, writes=None)


def test_rtu_reads_before_the_first_scan_answer_busy(tmp_path, pty_pair):
    end_a, end_b = pty_pair
    unit = 7
    rtu = (f"modbus_rtu: {{port: {end_a}, unit: {unit}, baudrate: 115200, parity: N}}\n"
           "sampling:")
    assert "\nsampling:" in DEMO
    relay = make_relay(tmp_path, extra=("sampling:", rtu))
    relay.start(companion=False)
    client = ModbusSerialClient(port=end_b, baudrate=115200, parity="N", timeout=1)
    try:
        assert client.connect()
        theta_trip = relay.regmap.get("motor1.theta_trip").address
        busy = client.read_holding_registers(theta_trip, count=2, device_id=unit)
        assert busy.isError() and busy.exception_code == BUSY
        busy = client.read_input_registers(0, count=1, device_id=unit)
        assert busy.isError() and busy.exception_code == BUSY
        relay.loop.step()
        trip = client.read_holding_registers(theta_trip, count=2, device_id=unit)
        assert not trip.isError() and f32(trip.registers) == pytest.approx(1.2)
    finally:
        client.close()
        relay.stop()
