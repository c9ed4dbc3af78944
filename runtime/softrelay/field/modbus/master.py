"""The Modbus master: one connection per gateway (TCP) or line (RTU), through pymodbus.

A ``ModbusLink`` owns one pymodbus async client, shared by every unit id behind it. Requests on
one link go one at a time (a gateway or an RS-485 line serves one at a time); links run
concurrently on one event loop, so a sweep of many gateways takes about as long as the slowest,
not the sum (the seed's "asynchronous I/O").

Contract of ``ModbusLink.read(addresses)``: one (value, quality) per address, never an
exception, never longer than about (requests x timeout):
- registers are read in the fewest requests the layout allows (``plan``): per device and table,
  contiguous values merge, holes of up to the device's ``max_gap`` are read through, no request
  exceeds the device's ``max_read``;
- a request that fails (timeout, exception response, garbage) marks its own values IO_ERROR and
  the others go on; a timeout also drops the connection (a late answer must not be taken for the
  next request's) and the link reconnects before its next request; a device that gave no answer
  is not asked again in the same read (one timeout per silent device, not one per request);
- a link that cannot connect marks everything IO_ERROR and retries after a back-off that doubles
  from 0.1 s up to ``max_backoff``;
- after every (re)connect, each device's setup registers (``profiles.setup_writes``) are read,
  written only where they differ (EEPROM cells wear) and read back before its values are
  trusted; a mismatch marks that device's values IO_ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import termios
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from softrelay.core import Quality
from softrelay.field.device import link_fault
from softrelay.field.modbus import profiles
from softrelay.field.modbus.registers import Register, coalesce, decode
from softrelay.field.open_faults import BusOpenError, check_node
from softrelay.modbus.protocol import READ_WORDS

log = logging.getLogger("softrelay.modbus")
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # its failures are ours to report

Reading = tuple[float, int]
IO_ERROR: Reading = (math.nan, Quality.IO_ERROR)


@dataclass
class DeviceMap:
    """What the master knows of one unit behind a link."""

    name: str
    unit: int
    registers: dict[str, Register]
    max_read: int = READ_WORDS
    max_gap: int = 0
    setup: list[tuple[int, int]] = field(default_factory=list)
    ready: bool = False  #: setup written and verified on the present connection
    setup_writes: int = 0  #: setup registers written (only where they differed)

    @classmethod
    def from_config(cls, device) -> DeviceMap:
        return cls(device.name, device.unit, profiles.register_map(device),
                   profiles.max_read(device), device.max_gap, profiles.setup_writes(device))


@dataclass
class Request:
    device: DeviceMap
    table: str
    start: int
    count: int
    members: list[tuple[int, Register]]  #: (position in the batch, register) of what it serves


def plan(devices: dict[str, DeviceMap], addresses: Sequence[str]) -> list[Request]:
    """The fewest requests that read ``addresses`` ('<device>.<quantity>')."""
    groups: dict[tuple[str, str], list[tuple[int, Register]]] = defaultdict(list)
    for i, address in enumerate(addresses):
        name, _, quantity = address.partition(".")
        device = devices[name]
        reg = device.registers[quantity]
        groups[(name, reg.table)].append((i, reg))
    requests = []
    for (name, table), members in groups.items():
        device = devices[name]
        spans = coalesce([reg for _, reg in members], device.max_gap, device.max_read)
        for start, count in spans:
            inside = [(i, reg) for i, reg in members
                      if start <= reg.address and reg.address + reg.count <= start + count]
            requests.append(Request(device, table, start, count, inside))
    return requests


class ModbusLink:
    def __init__(self, name: str, client_factory: Callable[[], ModbusBaseClient],
                 devices: Sequence[DeviceMap], timeout: float, max_backoff: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.client_factory = client_factory
        self.devices = {d.name: d for d in devices}
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.clock = clock
        self.client: ModbusBaseClient | None = None  #: None while not connected
        self.connected = False
        self.retry_at = 0.0
        self.backoff = 0.0
        self.requests = 0
        self.failures = 0
        self.connects = 0
        self.connect_attempts = 0
        self.last_error = ""
        self._plans: dict[tuple[str, ...], list[Request]] = {}

    # --- connection ----------------------------------------------------------------------
    async def _connect(self) -> bool:
        if self.connected:
            return True
        now = self.clock()
        if now < self.retry_at:
            return False
        self.connect_attempts += 1
        try:
            if self.client is None:  # a serial port that cannot be opened raises here
                self.client = self.client_factory()
            ok = await asyncio.wait_for(self.client.connect(), self.timeout + 1.0)
            error = "" if ok else "refused: connect: refused or unreachable"
        except BusOpenError as exc:  # the sentence says what, why and the remedy
            ok, error = False, f"I/O error: {exc}"
        except (OSError, TimeoutError, ModbusException, termios.error, ValueError) as exc:
            ok, error = False, f"{link_fault(exc)}: connect: {exc.__class__.__name__}: {exc}"
        if not ok:
            self.backoff = min(self.max_backoff, max(0.1, 2 * self.backoff))
            self.retry_at = now + self.backoff
            self.last_error = f"{error}; next attempt in {self.backoff:g} s"
            self._drop()
            return False
        self.connected = True
        self.connects += 1
        self.backoff = 0.0
        for device in self.devices.values():
            device.ready = not device.setup
        return True

    def _drop(self) -> None:
        """Close the connection; the next request reconnects (a fresh socket or port)."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        self.client = None
        self.connected = False

    async def close(self) -> None:
        self._drop()

    # --- requests ------------------------------------------------------------------------
    def _live(self) -> ModbusBaseClient:
        """The client of the connection ``_connect`` made (requests are made only after it
        said True, and none after a failed one dropped it)."""
        assert self.client is not None, f"{self.name}: a request without a connection"
        return self.client

    async def _call(self, what: str, request: Callable[[], Awaitable[ModbusPDU]]
                    ) -> ModbusPDU | None:
        """Run one request (``request()`` makes it: pymodbus may raise while making it, when
        the connection is gone); None, and the reason in ``last_error``, when it failed. A
        request that got no valid answer at all also drops the connection (``connected``
        turns False); an exception response keeps it."""
        self.requests += 1
        try:
            # pymodbus enforces ``timeout``; this only guards against a hang in it
            response = await asyncio.wait_for(request(), self.timeout * 2 + 0.5)
        except (ModbusException, OSError, TimeoutError, ValueError) as exc:
            self.failures += 1
            self.last_error = f"{link_fault(exc)}: {what}: {exc.__class__.__name__}: {exc}"
            self._drop()  # a late answer must not be taken for the next request's
            return None
        if response.isError():
            self.failures += 1
            code = getattr(response, "exception_code", None)
            self.last_error = (f"{link_fault(exception_code=code)}: {what}" if code
                               else f"I/O error: {what}: error response")
            return None
        return response

    async def _read_one(self, device: DeviceMap, address: int, what: str) -> int | None:
        response = await self._call(f"{device.name} {what} {address}", functools.partial(
            self._live().read_holding_registers, address, count=1, device_id=device.unit))
        return None if response is None else response.registers[0]

    async def _setup(self, device: DeviceMap) -> bool:
        """Each setup register read first and written only where it differs, then read back:
        the thermal gateway keeps emissivity and scaling in EEPROM, so a flapping link must
        not wear the cells out by writing the same value at every reconnect."""
        done = []
        for address, value in device.setup:
            present = await self._read_one(device, address, "read")
            if present is None:
                return False
            if present == value:
                done.append(f"{address}={value}")
                continue
            what = f"{device.name} write {address}={value}"
            if await self._call(what, functools.partial(
                    self._live().write_register, address, value, device_id=device.unit)) is None:
                return False
            device.setup_writes += 1
            stored = await self._read_one(device, address, "read back")
            if stored is None:
                return False
            if stored != value:
                self.last_error = (f"garbage: {device.name}: register {address} read back "
                                   f"{stored}, wrote {value}")
                log.warning("%s: %s", self.name, self.last_error)
                return False
            done.append(f"{address}={value} written (was {present})")
        log.info("%s: %s set up and verified (%s)", self.name, device.name, ", ".join(done))
        device.ready = True
        return True

    async def read(self, addresses: Sequence[str]) -> list[Reading]:
        """One (value, quality) per '<device>.<quantity>' address; see the module contract."""
        key = tuple(addresses)
        requests = self._plans.get(key)
        if requests is None:
            requests = self._plans[key] = plan(self.devices, addresses)
        readings: list[Reading] = [IO_ERROR] * len(addresses)
        silent: set[str] = set()  # devices that did not answer: not asked again in this read
        for request in requests:
            device = request.device
            if device.name in silent:
                continue
            if not await self._connect():
                break
            if not device.ready and not await self._setup(device):
                if not self.connected:  # no answer: the call dropped the connection
                    silent.add(device.name)
                continue
            client = self._live()
            read = (client.read_holding_registers if request.table == "holding"
                    else client.read_input_registers)
            what = f"{device.name} {request.table} {request.start}+{request.count}"
            response = await self._call(what, functools.partial(
                read, request.start, count=request.count, device_id=device.unit))
            if response is None:
                if not self.connected:
                    silent.add(device.name)
                continue
            words = response.registers
            if len(words) != request.count:
                self.failures += 1
                self.last_error = f"garbage: {what}: {len(words)} registers in the answer"
                continue
            for i, reg in request.members:
                offset = reg.address - request.start
                readings[i] = decode(reg, words[offset:offset + reg.count])
        return readings


def tcp_link(config, port: int | None = None) -> ModbusLink:
    """A link to a ``ModbusTcpBus`` (``port`` overrides the config's: a simulated gateway on a
    free port)."""
    port = port if port is not None else config.port

    def factory():
        return AsyncModbusTcpClient(config.host, port=port, timeout=config.timeout, retries=0,
                                    reconnect_delay=0, name=config.name)

    return ModbusLink(config.name, factory, [DeviceMap.from_config(d) for d in config.devices],
                      config.timeout, config.max_backoff)


def rtu_link(config, port: str | None = None) -> ModbusLink:
    """A link to a ``ModbusRtuBus``; ``port`` overrides the config's with a pty (a simulated
    line), which carries no parity (Linux refuses to set one on a pty)."""
    path = port or config.port
    parity = "N" if port else config.parity

    def factory():
        if not port:  # a real line: pymodbus would only say it could not connect
            check_node("serial", path)
        return AsyncModbusSerialClient(path, baudrate=config.baudrate, parity=parity,
                                       stopbits=config.stopbits, bytesize=8,
                                       timeout=config.timeout, retries=0, reconnect_delay=0,
                                       name=config.name)

    return ModbusLink(config.name, factory, [DeviceMap.from_config(d) for d in config.devices],
                      config.timeout, config.max_backoff)


async def sweep(links: Sequence[ModbusLink], batches: Sequence[Sequence[str]],
                concurrent: bool = True) -> list[list[Reading]]:
    """Read ``batches[k]`` on ``links[k]`` for every k: all at once, or one link after another."""
    if concurrent:
        return list(await asyncio.gather(*(link.read(b) for link, b in zip(links, batches,
                                                                           strict=True))))
    return [await link.read(b) for link, b in zip(links, batches, strict=True)]
