"""Building Modbus buses, twins and links for the tests.

``GATEWAY`` is a Modbus/TCP gateway with a power meter (unit 1) and a thermal gateway (unit
2), simulated from ``PLANT``'s values; ``twin_server`` serves it on 127.0.0.1 (port 0) so the
field drivers talk to a real socket; ``run`` runs a coroutine on the one event loop the links
are bound to (as the poller's)."""

from __future__ import annotations

import asyncio

import yaml

from softrelay.config.buses import ModbusRtuBus, ModbusTcpBus
from softrelay.sim.modbus_twin import twins_for
from softrelay.sim.twin_server import TwinServer

GATEWAY = """
name: gw1
kind: modbus_tcp
host: 127.0.0.1
port: 0
simulated: true
timeout: 0.15
max_backoff: 0.4
devices:
  - {name: meter, unit: 1, profile: sdm630,
     simulate: {current.a: ia, current.b: ib, current.c: ic, phase_angle.a: pa,
                phase_angle.b: pa, phase_angle.c: pa}}
  - {name: gw, unit: 2, profile: thermal_gateway, emissivity: 0.55, decimals: 1,
     simulate: {ch1: ta, ch2: tb, ch3: tc}}
"""

PLANT = {"ia": 101.5, "ib": 99.25, "ic": 100.0, "pa": 25.0, "ta": 61.2, "tb": 40.5, "tc": -5.3}


def tcp_bus(text: str = GATEWAY, **changes) -> ModbusTcpBus:
    data = yaml.safe_load(text)
    data.update(changes)
    return ModbusTcpBus.model_validate(data)


def rtu_bus(port: str, text: str = GATEWAY) -> ModbusRtuBus:
    """The same devices on an RTU line at ``port`` (no parity: a pty refuses one)."""
    data = yaml.safe_load(text)
    del data["host"]
    data.update(kind="modbus_rtu", simulated=False, port=port, baudrate=115200,
                parity="N")
    return ModbusRtuBus.model_validate(data)


def twin_server(bus, plant: dict | None = None) -> TwinServer:
    """The twins of ``bus``'s devices, reading ``plant`` (default: ``PLANT``), not started."""
    values = dict(PLANT) if plant is None else plant
    return TwinServer(twins_for(bus, lambda a: values[a]), bus.name)


LOOP = asyncio.new_event_loop()  #: one loop, as in the poller: a link's client is bound to it


def run(coro):
    """``coro`` run to its end on ``LOOP``; its result."""
    return LOOP.run_until_complete(coro)


ALL = ["meter.current.a", "meter.current.b", "meter.current.c", "meter.angle.a",
       "meter.angle.b", "meter.angle.c", "gw.ch1", "gw.ch2", "gw.ch3", "gw.emissivity"]
