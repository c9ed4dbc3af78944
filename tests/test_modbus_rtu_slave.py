"""The Modbus RTU slave over a socat pty pair: pymodbus's serial client and raw frames (CRC,
addresses, broadcast) against the relay's map."""

from __future__ import annotations

import struct
import time

import pytest
import serial
from pymodbus.client import ModbusSerialClient

from softrelay.modbus.protocol import rtu_frame
from softrelay.modbus.regmap import MAP_VERSION

from support.configs import DEMO
from support.modbus import ACCESS, CODE, OPERATOR, Running, make_relay

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

UNIT = 7


@pytest.fixture
def line(tmp_path, pty_pair):
    end_a, end_b = pty_pair
    rtu = (f"modbus_rtu: {{port: {end_a}, unit: {UNIT}, baudrate: 115200, parity: N}}\n"
           "sampling:")
    assert "\nsampling:" in DEMO
    r = Running(make_relay(tmp_path, extra=("sampling:", rtu)))
    yield r, end_b
    r.close()


def test_pymodbus_reads_and_writes_over_rtu(line):
    running, port = line
    regmap = running.relay.regmap
    client = ModbusSerialClient(port=str(port), baudrate=115200, parity="N", timeout=1)
    assert client.connect()
    try:
        version = client.read_input_registers(0, count=1, device_id=UNIT)
        assert version.registers == [MAP_VERSION]
        trip = client.read_holding_registers(regmap.get("motor1.theta_trip").address, count=2,
                                             device_id=UNIT)
        assert struct.unpack(">f", struct.pack(">HH", *trip.registers))[0] == pytest.approx(1.2)
        refused = client.read_input_registers(96, count=1, device_id=UNIT)
        assert refused.isError() and refused.exception_code == 2
        reset = regmap.get("motor1.reset").address
        refused = client.write_coil(reset, True, device_id=UNIT)
        assert refused.isError() and refused.exception_code == 1  # no code on the line
        unlock = regmap.get("relay.unlock").address
        assert not client.write_registers(unlock, [OPERATOR >> 16, OPERATOR & 0xFFFF],
                                          device_id=UNIT).isError()
        assert not client.write_coil(reset, True, device_id=UNIT).isError()
    finally:
        client.close()
    running.scans()
    port_name = running.relay.rtu.line.port
    assert any(e.kind == "command" and e.source == "reset motor1" and
               f"modbus-rtu rtu:{port_name} unit {UNIT}, level 1 operator" in e.text
               for e in running.relay.events.ring)


def test_bad_crc_other_addresses_and_broadcasts_get_no_answer(line):
    running, port = line
    regmap = running.relay.regmap
    with serial.Serial(str(port), 115200, timeout=0.3) as s:
        good = rtu_frame(UNIT, struct.pack(">BHH", 4, 0, 1))
        s.write(good)
        assert s.read(7) == rtu_frame(UNIT, bytes([4, 2, 0, MAP_VERSION]))
        s.write(good[:-1] + bytes([good[-1] ^ 0xFF]))  # a corrupted CRC
        assert s.read(7) == b""
        time.sleep(0.05)
        s.write(rtu_frame(UNIT + 1, struct.pack(">BHH", 4, 0, 1)))  # another device
        assert s.read(7) == b""
        time.sleep(0.05)
        unlock = regmap.get("relay.unlock").address  # the line earns level 1 (answered)
        s.write(rtu_frame(UNIT, struct.pack(">BHHBHH", 16, unlock, 2, 4, OPERATOR >> 16,
                                            OPERATOR & 0xFFFF)))
        assert s.read(8) == rtu_frame(UNIT, struct.pack(">BHH", 16, unlock, 2))
        time.sleep(0.05)
        reset_all = regmap.get("relay.reset_all").address
        s.write(rtu_frame(0, struct.pack(">BHH", 5, reset_all, 0xFF00)))  # broadcast
        assert s.read(8) == b""
    running.scans()
    assert any(e.kind == "command" and e.source == "reset all"
               for e in running.relay.events.ring)
    assert running.relay.rtu.crc_errors == 1


def test_a_relay_on_rs485_alone_takes_settings_after_the_engineers_code(tmp_path, pty_pair):
    """No Modbus/TCP at all: the access section serves the RTU line (settings at level 0:
    01; after the engineer's code: written, validated, applied at the next scan, recorded
    naming the line and the level)."""
    end_a, end_b = pty_pair
    rtu = f"modbus_rtu: {{port: {end_a}, unit: {UNIT}, baudrate: 115200, parity: N}}\nsampling:"
    running = Running(make_relay(tmp_path, slave=ACCESS + "\n",
                                 extra=("sampling:", rtu)))
    regmap = running.relay.regmap
    assert running.relay.slave is None
    client = ModbusSerialClient(port=str(end_b), baudrate=115200, parity="N", timeout=1)
    assert client.connect()
    try:
        k2 = regmap.get("motor1.k2").address
        four = list(struct.unpack(">HH", struct.pack(">f", 4.0)))
        locked = client.write_registers(k2, four, device_id=UNIT)
        assert locked.isError() and locked.exception_code == 1
        unlock = regmap.get("relay.unlock").address
        assert not client.write_registers(unlock, [CODE >> 16, CODE & 0xFFFF],
                                          device_id=UNIT).isError()
        assert not client.write_registers(k2, four, device_id=UNIT).isError()
        running.scans()
        assert running.relay.core.thermal_settings["k2"][0] == 4.0
    finally:
        client.close()
        running.close()
    assert any("k2 3.0 -> 4.0" in e.text and "modbus-rtu rtu:" in e.text
               and "level 2 engineer" in e.text for e in running.relay.events.ring)
