"""A Modbus bus (a TCP gateway or an RTU line) as a ``Device``: the registry's factories.

The relay polls every Modbus link from one event loop (``poller.ModbusPoller``, links
concurrent), so a ``ModbusDevice`` hands the companion its ``link``; its own ``read`` runs
the same link's read on a private loop, for whoever wants one bus read in turn (the contract
test, ``softrelay bench``). A simulated bus (``simulated: true``) gets its devices' twins
served on loopback (TCP) or a pty (RTU) by the registry's stand-in (``sim.buses``), and the
link talks to them for real; faults are injected into that server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from softrelay.field.device import Device, Reading
from softrelay.field.modbus.master import ModbusLink, rtu_link, tcp_link
from softrelay.field.registry import stand_in


class ModbusDevice(Device):
    """One Modbus link as a ``Device``; ``stand_in``: the twin server behind a simulated
    bus (``inject``, ``clear``, ``stop``), None on real hardware."""

    def __init__(self, link: ModbusLink, stand_in=None) -> None:
        super().__init__(link.name, link.timeout)
        self.link = link
        self.stand_in = stand_in
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def faults(self):
        return self.stand_in

    def inject(self, address: str, kind: str, **params: float) -> None:
        """Inject a fault into the simulated devices (``sim.twin_server``)."""
        if self.stand_in is None:
            raise ValueError(f"bus {self.name!r} is a real bus: faults are injected into "
                             "simulated ones")
        self.stand_in.inject(address, kind, **params)

    def clear(self, address: str | None = None) -> None:
        if self.stand_in is not None:
            self.stand_in.clear(address)

    def read(self, addresses: Sequence[str]) -> list[Reading]:
        """The link's read (``master.ModbusLink.read``: never an exception), on this
        device's own event loop."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        readings = self._loop.run_until_complete(self.link.read(addresses))
        self.errors = self.link.failures
        self.last_error = self.link.last_error
        return [(float(value), int(quality)) for value, quality in readings]

    def close(self) -> None:
        """Drop the connection and stop the twin server; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            self._loop.run_until_complete(self.link.close())
            self._loop.close()
        else:  # polled by the companion's poller, which closed it: closing again is harmless
            asyncio.run(self.link.close())
        if self.stand_in is not None:
            self.stand_in.stop()


def modbus_tcp_bus(config, plant=None, sampling=None) -> ModbusDevice:
    """The registry's factory for a ``ModbusTcpBus`` (``sampling``: unused)."""
    if not config.simulated:
        return ModbusDevice(tcp_link(config))
    server = stand_in(config)(config, plant)
    return ModbusDevice(tcp_link(config, port=server.start_tcp(config.host, config.port)),
                        server)


def modbus_rtu_bus(config, plant=None, sampling=None) -> ModbusDevice:
    """The registry's factory for a ``ModbusRtuBus`` (``sampling``: unused)."""
    if not config.simulated:
        return ModbusDevice(rtu_link(config))
    server = stand_in(config)(config, plant)
    return ModbusDevice(rtu_link(config, port=server.start_rtu()), server)
