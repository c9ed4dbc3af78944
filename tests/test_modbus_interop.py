"""The master against two Modbus servers it did not write (pymodbus's and modbus_tk's), over
TCP on 127.0.0.1 and RTU over a socat pty pair; and the simulated devices read by a client that
is not pymodbus (modbus_tk's master): both ends agree with independent implementations."""

from __future__ import annotations

import math
import socket
import time

import modbus_tk.exceptions
import pytest
import serial
import yaml
from modbus_tk import defines as cst
from modbus_tk import modbus_rtu, modbus_tcp

from softrelay.config.buses import ModbusRtuBus, ModbusTcpBus
from softrelay.core import Quality
from softrelay.field.modbus.master import rtu_link, tcp_link
from softrelay.field.modbus.registers import encode

from support.twins import PLANT, run, tcp_bus, twin_server

GENERIC = """
name: plc
kind: modbus_tcp
host: 127.0.0.1
port: PORT
timeout: 0.3
devices:
  - name: tx
    unit: 3
    registers:
      - {name: oil, table: input, address: 10, type: int16, scale: 0.1, sentinels: [-32768]}
      - {name: winding, table: input, address: 11, type: int16, scale: 0.1,
         sentinels: [-32768]}
      - {name: load, table: holding, address: 100, type: float32}
      - {name: energy, table: holding, address: 102, type: uint32, word_order: little,
         scale: 0.001}
      - {name: delta, table: holding, address: 104, type: int32, scale: 0.01}
      - {name: tap, table: holding, address: 106, type: uint16, offset: -8}
"""
# the values a device holds, as its registers
INPUT = {10: encode(653, "int16"), 11: encode(-32768, "int16")}
HOLDING = {100: encode(412.75, "float32"), 102: encode(123_456_789, "uint32", "little"),
           104: encode(-4321, "int32"), 106: encode(11, "uint16")}
EXPECTED = {"tx.oil": (pytest.approx(65.3), Quality.GOOD),
            "tx.load": (pytest.approx(412.75), Quality.GOOD),
            "tx.energy": (pytest.approx(123456.789), Quality.GOOD),
            "tx.delta": (pytest.approx(-43.21), Quality.GOOD),
            "tx.tap": (3.0, Quality.GOOD)}
ADDRESSES = [*EXPECTED, "tx.winding"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int) -> None:
    """modbus_tk binds on its own thread: wait until it accepts."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def flat(table: dict[int, list[int]]) -> list[tuple[int, int]]:
    return [(a + k, w) for a, words in table.items() for k, w in enumerate(words)]


def check(readings) -> None:
    got = dict(zip(ADDRESSES, readings, strict=True))
    for address, expected in EXPECTED.items():
        assert got[address] == expected, address
    value, quality = got["tx.winding"]  # the -32768 sentinel: no reading
    assert quality == Quality.SENTINEL and math.isnan(value)


def generic(port: int) -> ModbusTcpBus:
    return ModbusTcpBus.model_validate(yaml.safe_load(GENERIC.replace("PORT", str(port))))


def modbus_tk_slave(server) -> None:
    slave = server.add_slave(3)
    slave.add_block("ir", cst.ANALOG_INPUTS, 0, 200)
    slave.add_block("hr", cst.HOLDING_REGISTERS, 0, 200)
    for address, word in flat(INPUT):
        slave.set_values("ir", address, word)
    for address, word in flat(HOLDING):
        slave.set_values("hr", address, word)


def test_master_reads_a_pymodbus_server_over_tcp():
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    def block(table):
        words = [0] * 200
        for address, word in flat(table):
            words[address] = word
        return [SimData(0, values=words, datatype=DataType.REGISTERS)]

    bits = [SimData(0, values=[False], datatype=DataType.BITS)]
    device = SimDevice(id=3, simdata=(bits, bits, block(HOLDING), block(INPUT)))

    async def scenario():
        server = ModbusTcpServer([device], address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        port = server.transport.sockets[0].getsockname()[1]
        link = tcp_link(generic(port))
        try:
            readings = await link.read(ADDRESSES)
            assert link.requests == 2, link.last_error  # one per table
            return readings
        finally:
            await link.close()
            await server.shutdown()

    check(run(scenario()))


@pytest.mark.e2e
def test_master_reads_a_modbus_tk_server_over_tcp():
    port = free_port()
    server = modbus_tcp.TcpServer(port=port, address="127.0.0.1")
    modbus_tk_slave(server)
    server.start()
    wait_listening(port)
    link = tcp_link(generic(port))
    try:
        check(run(link.read(ADDRESSES)))
        # modbus_tk answers exception 02 for a block it lacks: that request only fails
        link.devices["tx"].registers["bogus"] = link.devices["tx"].registers["oil"].__class__(
            500, "int16", table="input")
        got = run(link.read(["tx.bogus", "tx.load"]))
        assert got[0][1] == Quality.IO_ERROR and got[1][1] == Quality.GOOD
        assert "exception 0x02" in link.last_error
    finally:
        run(link.close())
        server.stop()


def test_master_reads_a_modbus_tk_server_over_rtu(pty_pair):
    end_a, end_b = pty_pair
    line = serial.Serial(end_a, baudrate=115200, bytesize=8, parity="N", stopbits=1)
    server = modbus_rtu.RtuServer(line)
    modbus_tk_slave(server)
    server.start()
    data = yaml.safe_load(GENERIC)
    del data["host"]
    data.update(kind="modbus_rtu", port=end_b, baudrate=115200, parity="N", timeout=0.5)
    link = rtu_link(ModbusRtuBus.model_validate(data))
    try:
        check(run(link.read(ADDRESSES)))
    finally:
        run(link.close())
        server.stop()
        line.close()


def test_the_simulated_devices_answer_an_independent_tcp_client():
    """modbus_tk's master, not pymodbus, reads the twins: their bytes are right on the wire."""
    bus = tcp_bus()
    server = twin_server(bus)
    master = modbus_tcp.TcpMaster("127.0.0.1", server.start_tcp(), timeout_in_sec=1.0)
    try:
        words = master.execute(1, cst.READ_INPUT_REGISTERS, 6, 2)
        assert encode(PLANT["ia"], "float32") == list(words)
        assert master.execute(2, cst.READ_HOLDING_REGISTERS, 4005, 2) == (95, 0)  # factory
        master.execute(2, cst.WRITE_SINGLE_REGISTER, 4005, output_value=55)
        master.execute(2, cst.WRITE_SINGLE_REGISTER, 4006, output_value=1)
        assert master.execute(2, cst.READ_HOLDING_REGISTERS, 4005, 2) == (55, 1)
        # 61.2, 40.5 and -5.3 C in tenths, two's complement
        assert master.execute(2, cst.READ_INPUT_REGISTERS, 0, 3) == (612, 405, 0x10000 - 53)
        with pytest.raises(modbus_tk.exceptions.ModbusError) as err:
            master.execute(2, cst.WRITE_SINGLE_REGISTER, 4005, output_value=101)  # > 1.0
        assert err.value.get_exception_code() == 3
        with pytest.raises(modbus_tk.exceptions.ModbusError) as err:
            master.execute(1, cst.READ_INPUT_REGISTERS, 200, 2)  # unmapped
        assert err.value.get_exception_code() == 2
        with pytest.raises(modbus_tk.exceptions.ModbusError) as err:
            master.execute(9, cst.READ_INPUT_REGISTERS, 0, 1)  # no such unit behind it
        assert err.value.get_exception_code() == 0x0B
    finally:
        master.close()
        server.stop()


@pytest.mark.e2e
def test_the_simulated_devices_answer_an_independent_rtu_client(pty_pair):
    end_a, end_b = pty_pair
    bus = tcp_bus()
    server = twin_server(bus)
    server.start_rtu(end_a)
    line = serial.Serial(end_b, baudrate=115200, bytesize=8, parity="N", stopbits=1)
    master = modbus_rtu.RtuMaster(line)
    master.set_timeout(1.0)
    try:
        master.execute(2, cst.WRITE_MULTIPLE_REGISTERS, 4005, output_value=[55, 2])
        assert master.execute(2, cst.READ_HOLDING_REGISTERS, 4005, 2) == (55, 2)
        assert master.execute(2, cst.READ_INPUT_REGISTERS, 0, 2) == (6120, 4050)  # 2 decimals
        t = time.monotonic()
        with pytest.raises(modbus_tk.exceptions.ModbusInvalidResponseError):
            master.execute(9, cst.READ_INPUT_REGISTERS, 0, 1)  # RTU: an absent unit is silent
        assert time.monotonic() - t >= 0.9
    finally:
        master.close()
        line.close()
        server.stop()


