"""Access levels over real Modbus/TCP on 127.0.0.1 (pymodbus and pyModbusTCP, an independent
client): a preset from level 0 refused and recorded with the peer, reset at level 1, settings
at level 2, lockout after 5 wrong codes, a second connection that never sent a code refused,
authority gone after a disconnect and after the minutes (an injected clock), refused
connections recorded, the local/remote switch."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
import urllib.request

import pytest
from pymodbus.client import ModbusTcpClient
from pyModbusTCP.client import ModbusClient

from support.modbus import CODE, OPERATOR, SLAVE, Running, f32, make_relay, send_code
from support.waits import wait_for

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not



def words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def texts(modbus_relay: Running) -> list[str]:
    return [e.text for e in modbus_relay.relay.events.ring]


def test_a_preset_from_level_0_is_refused_and_recorded_with_the_peer(modbus_relay):
    """The finding: any admitted client wrote motor1.preset_theta = 10 (trip within 0.3 s)."""
    regmap, relay = modbus_relay.relay.regmap, modbus_relay.relay
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as client:
        preset = regmap.get("motor1.preset_theta").address
        answer = client.write_registers(preset, words(10.0), device_id=1)
        assert answer.isError() and answer.exception_code == 1
        peer = f"127.0.0.1:{client.socket.getsockname()[1]}"
        modbus_relay.scans(5)
        theta = client.read_input_registers(regmap.get("motor1.theta").address, count=2,
                                            device_id=1).registers
    assert f32(theta) < 1.0  # not preset: no trip
    assert not any(e.kind == "command" and e.source.startswith("preset") for e in
                   relay.events.ring)
    wait_for(lambda: any(peer in t and "preset needs level 2 engineer" in t
                         for t in texts(modbus_relay)), what="the refusal's event")


def test_reset_at_level_1_settings_at_level_2_named_in_their_events(modbus_relay):
    regmap, relay = modbus_relay.relay.regmap, modbus_relay.relay
    client = ModbusClient(host="127.0.0.1", port=modbus_relay.port, unit_id=1, auto_open=True,
                          auto_close=False, timeout=2.0)
    try:
        unlock = regmap.get("relay.unlock").address
        reset = regmap.get("motor1.reset").address
        k2 = regmap.get("motor1.k2").address
        assert client.write_multiple_registers(unlock, [OPERATOR >> 16, OPERATOR & 0xFFFF])
        assert client.write_single_coil(reset, True)
        assert not client.write_multiple_registers(k2, words(4.0))
        assert client.last_except == 1  # the operator does not set
        assert client.write_multiple_registers(unlock, [CODE >> 16, CODE & 0xFFFF])
        assert client.write_multiple_registers(k2, words(4.0))
        preset = regmap.get("motor1.preset_theta").address
        assert client.write_multiple_registers(preset, words(0.5))
        peer = f"127.0.0.1:{client._sock.getsockname()[1]}"
        modbus_relay.scans()
    finally:
        client.close()
    events = relay.events.ring
    assert any(e.source == "reset motor1" and f"from modbus {peer}, level 1 operator" in e.text
               for e in events)
    assert any(e.kind == "settings" and e.source == "motor1" and
               f"from modbus {peer}, level 2 engineer: k2 3.0 -> 4.0" in e.text for e in events)
    (preset,) = [e for e in events if e.source == "preset motor1"]
    assert preset.text.startswith(f"from modbus {peer}, level 2 engineer; theta ")
    assert preset.text.endswith(" -> 0.5"), preset.text  # old -> new


def test_five_wrong_codes_lock_the_peer_out_and_make_one_lockout_event(modbus_relay):
    regmap = modbus_relay.relay.regmap
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as client:
        unlock = regmap.get("relay.unlock").address
        for k in range(5):
            wrong = client.write_registers(unlock, [0, 1000 + k], device_id=1)
            assert wrong.isError() and wrong.exception_code == 1
        right = client.write_registers(unlock, [CODE >> 16, CODE & 0xFFFF], device_id=1)
        assert right.isError() and right.exception_code == 1  # locked out: even the code
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as again:  # a new port
        right = again.write_registers(unlock, [CODE >> 16, CODE & 0xFFFF], device_id=1)
        assert right.isError() and right.exception_code == 1
    lockouts = [t for t in texts(modbus_relay) if "locked out for" in t and " after " in t]
    assert lockouts == ["127.0.0.1 locked out for 1 min after 5 wrong codes (lockout 1)"]
    assert modbus_relay.relay.authority.counters.wrong_codes == 5
    # the DCS reads the counters in the map (version 3), the NMS in the metrics
    first = regmap.get("relay.wrong_codes").address
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as reader:

        def figures() -> list[int]:
            return reader.read_input_registers(first, count=8, device_id=1).registers

        wait_for(lambda: figures()[:4] == [0, 5, 0, 1], what="wrong codes 5, lockouts 1")
        assert figures()[4:] == [0, 0, 0, 0]  # no write refused, no session, remote
    port = modbus_relay.relay.telemetry_ports["metrics"]

    def metric(name: str) -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith(f"softrelay_{name} "):
                    return float(line.split()[1])
        return None

    wait_for(lambda: metric("access_lockouts_total") == 1.0, 5.0, "the lockout metric")
    assert metric("access_wrong_codes_total") == 5.0


def test_a_second_connection_that_never_sent_a_code_is_refused(modbus_relay):
    regmap = modbus_relay.relay.regmap
    k2 = regmap.get("motor1.k2").address
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as engineer, \
            ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as other:
        send_code(engineer, CODE, regmap)
        assert not engineer.write_registers(k2, words(4.0), device_id=1).isError()
        refused = other.write_registers(k2, words(5.0), device_id=1)
        assert refused.isError() and refused.exception_code == 1
        preset = other.write_registers(regmap.get("motor1.preset_theta").address,
                                       words(0.0), device_id=1)
        assert preset.isError() and preset.exception_code == 1


def test_authority_ends_when_the_connection_closes(modbus_relay):
    regmap, authority = modbus_relay.relay.regmap, modbus_relay.relay.authority
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as engineer:
        send_code(engineer, CODE, regmap)
        assert authority.engineer_held
        peer = f"127.0.0.1:{engineer.socket.getsockname()[1]}"
    wait_for(lambda: not authority.engineer_held, what="the level dropped after the close")
    assert any(f"level 2 engineer of {peer} ended: connection closed" in t
               for t in texts(modbus_relay))
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as later:  # its slot
        refused = later.write_registers(regmap.get("motor1.k2").address, words(4.0),
                                        device_id=1)
        assert refused.isError() and refused.exception_code == 1


def test_authority_expires_after_the_minutes(modbus_relay):
    """access.minutes is 1: on an injected clock, 61 s after the code the same connection is
    refused again (and the expiry is recorded)."""
    authority, regmap = modbus_relay.relay.authority, modbus_relay.relay.regmap
    now = [time.monotonic()]
    authority.clock = authority.refusals.clock = lambda: now[0]
    k2 = regmap.get("motor1.k2").address
    with ModbusTcpClient("127.0.0.1", port=modbus_relay.port, timeout=2) as client:
        send_code(client, CODE, regmap)
        now[0] += 59.0
        assert not client.write_registers(k2, words(4.0), device_id=1).isError()
        now[0] += 2.0
        refused = client.write_registers(k2, words(4.5), device_id=1)
        assert refused.isError() and refused.exception_code == 1
    assert any("level 2 engineer of 127.0.0.1:" in t and "expired after 1 min" in t
               for t in texts(modbus_relay))


def test_refused_connections_are_events_aggregated(tmp_path):
    allow = SLAVE.replace("  units: [1]\n", "  units: [1]\n  allow: [10.0.0.0/8]\n")
    r = Running(make_relay(tmp_path, allow))
    try:
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", r.port), 1.0)
            s.settimeout(1.0)
            with contextlib.suppress(OSError):
                s.recv(10)
            s.close()
        wait_for(lambda: r.relay.slave.server.counters["refused"] >= 30, what="30 refused")
        wait_for(lambda: any("connection refused: not in the allowlist" in t
                             for t in texts(r)), what="the refusal event")
        refusals = [t for t in texts(r) if "connection refused" in t]
        assert len(refusals) <= 2, refusals  # the first at once, the rest counted
    finally:
        r.close()


def test_in_local_every_modbus_write_is_refused_and_says_why(tmp_path):
    slave = SLAVE.replace("  minutes: 1\n", "  minutes: 1\n  local_remote: {pin: 26}\n")
    assert slave != SLAVE
    r = Running(make_relay(tmp_path, slave))
    try:
        pin = r.relay.factory.pin(26)
        regmap = r.relay.regmap
        with ModbusTcpClient("127.0.0.1", port=r.port, timeout=2) as client:
            send_code(client, OPERATOR, regmap)
            reset = regmap.get("motor1.reset").address
            assert not client.write_coil(reset, True, device_id=1).isError()
            pin.drive_low()  # the key switch to local (its contact pulls the pin down)
            wait_for(lambda: r.relay.authority.is_local(), what="local")
            local = regmap.get("relay.local", "discrete_input").address
            wait_for(lambda: client.read_discrete_inputs(local, count=1, device_id=1).bits[0],
                     what="the map's local input")
            refused = client.write_coil(reset, True, device_id=1)
            assert refused.isError() and refused.exception_code == 1
            pin.drive_high()
            wait_for(lambda: not r.relay.authority.is_local(), what="remote")
            assert not client.write_coil(reset, True, device_id=1).isError()
        found = texts(r)
        assert any("local/remote switch in LOCAL" in t for t in found)
        assert any("write refused: the relay is in local: remote writes are refused" in t
                   for t in found)
    finally:
        r.close()
