"""A Modbus server for simulated devices, TCP (a gateway with unit ids behind it) or RTU (a
line on a serial port or pty), running on its own thread and event loop.

It answers at the byte level so that faults can be injected as they appear on a wire:
- ``nack``: the device does not answer; behind a TCP gateway the gateway answers exception
  0x0B (target device failed to respond); on an RTU line, silence;
- ``refused``: at '*' the server stops listening and drops its connections (the seed's
  "Connection refused: port 502"); at a device, exception 0x0A (gateway path unavailable);
- ``slow``: the answer comes ``delay`` s late (default 1 s, beyond any sane timeout);
- ``garbage``: the answer's bytes are scrambled (a bad byte count / CRC, as EMI does);
- ``sentinel``, ``stuck``, ``noisy``: value faults, see ``twin.ModbusTwin``.
Where each acts is the ``modbus`` medium's table (``catalog.faults.MEDIA``): a value fault goes
to the twins, any other is the server's, of a device or of the whole server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import threading
import tty

import numpy as np

from softrelay.catalog.faults import FaultKind, Where, device_fault_refusal, kind_named
from softrelay.modbus import protocol
from softrelay.modbus.pdu import answer
from softrelay.modbus.protocol import (
    GATEWAY_PATH_UNAVAILABLE,
    GATEWAY_TARGET_FAILED,
    MBAP,
    MBAP_MAX_LENGTH,
    MBAP_MIN_LENGTH,
    MBAP_PROTOCOL,
    RTU_BROADCAST,
    exception_pdu,
)
from softrelay.sim.devices import Fault
from softrelay.sim.modbus_twin import MEDIUM, ModbusTwin, TwinTables

#: what a TCP gateway answers for a target that fails a transaction (an RTU line: silence)
GATEWAY_ANSWERS = {FaultKind.NACK: GATEWAY_TARGET_FAILED,
                   FaultKind.REFUSED: GATEWAY_PATH_UNAVAILABLE}


class TwinServer:
    def __init__(self, twins: list[ModbusTwin], name: str = "twin", seed: int = 7,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        """``loop``: a running loop (on another thread) to serve on, shared with other servers;
        none: a loop and thread of its own."""
        self.name = name
        self.twins = {t.unit: t for t in twins}
        self.by_name = {t.name: t for t in twins}
        self.faults: dict[str, Fault] = {}  #: transaction faults: '*' or device name
        self.rng = np.random.default_rng(seed)
        self.own_loop = loop is None
        self.loop = loop if loop is not None else asyncio.new_event_loop()
        self.port: int | None = None
        self.host = "127.0.0.1"
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self._rtu_fd: int | None = None
        self._peer: int | None = None  #: our hold on the other end of a pty we made
        if self.own_loop:
            self._thread = threading.Thread(target=self.loop.run_forever, name=f"twin-{name}",
                                            daemon=True)
            self._thread.start()

    # --- lifecycle -----------------------------------------------------------------------
    def _call(self, coro, timeout: float = 5.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0: a free port); returns the port."""
        self.host = host
        self._call(self._listen(port))
        if self.port is None:  # _listen sets it, or raises
            raise RuntimeError(f"{self.name}: listening on {host}:{port} gave no port")
        return self.port

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve_tcp, self.host, port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_tcp(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def start_rtu(self, path: str | None = None) -> str:
        """Serve RTU on a serial device or pty end (``path``), or on a new pty whose other
        end's path is returned (for the master to open)."""
        if path is None:
            fd, peer = os.openpty()
            path = os.ttyname(peer)
            self._peer = peer  # held open so the pty persists between the master's opens
        else:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        with contextlib.suppress(termios.error):
            tty.setraw(fd)
        os.set_blocking(fd, False)
        self._rtu_fd = fd
        self._rtu_buffer = b""
        self.loop.call_soon_threadsafe(self.loop.add_reader, fd, self._rtu_readable)
        return path

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._close_tcp())
            self._call(self._cancel_tasks())
        if self._rtu_fd is not None:
            self._call(self._remove_reader(self._rtu_fd))
        if self.own_loop:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
            self.loop.close()
        if self._rtu_fd is not None:
            os.close(self._rtu_fd)
            self._rtu_fd = None
        if self._peer is not None:
            os.close(self._peer)
            self._peer = None

    async def _remove_reader(self, fd: int) -> None:
        self.loop.remove_reader(fd)

    # --- faults --------------------------------------------------------------------------
    def inject(self, address: str, kind: str, **params: float) -> None:
        """Inject ``kind`` at '*', '<device>' or '<device>.<quantity>'."""
        known = kind_named(kind)
        if known is None or known not in MEDIUM.where:
            raise ValueError(f"unknown fault {kind!r}")
        device, _, quantity = address.partition(".")
        if address != "*" and device not in self.by_name:
            raise ValueError(f"{self.name}: no device {device!r}")
        if MEDIUM.where[known] is Where.VALUE:
            targets = self.twins.values() if address == "*" else [self.by_name[device]]
            for twin in targets:
                twin.value_faults[quantity or "*"] = Fault(known, **params)
            return
        refusal = device_fault_refusal(address, known)
        if refusal is not None:
            raise ValueError(refusal)
        self.faults[address] = Fault(known, **params)
        if known == FaultKind.REFUSED and address == "*" and self._server is not None:
            self._call(self._close_tcp())

    def clear(self, address: str | None = None) -> None:
        targets = [address] if address is not None else ["*", *self.by_name]
        for target in targets:
            removed = self.faults.pop(target, None)
            refused = removed is not None and removed.kind == FaultKind.REFUSED
            if refused and target == "*" and self.port is not None and self._server is None:
                self._call(self._listen(self.port))
            device, _, quantity = target.partition(".")
            for twin in (self.twins.values() if target == "*" else
                         [self.by_name[device]] if device in self.by_name else []):
                if quantity:
                    twin.value_faults.pop(quantity, None)
                else:
                    twin.value_faults.clear()

    def _fault(self, unit: int) -> Fault | None:
        twin = self.twins.get(unit)
        return self.faults.get("*") or (self.faults.get(twin.name) if twin else None)

    # --- answering -----------------------------------------------------------------------
    async def _respond(self, unit: int, pdu: bytes, rtu: bool) -> bytes | None:
        """The response PDU, or None for silence."""
        twin = self.twins.get(unit)
        if twin is not None:
            twin.requests += 1
        fault = self._fault(unit)
        if fault is not None and fault.kind == FaultKind.SLOW:
            await asyncio.sleep(fault.delay if fault.delay is not None else 1.0)
        if twin is None:
            return None if rtu else exception_pdu(pdu[0] if pdu else 0, GATEWAY_TARGET_FAILED)
        code = GATEWAY_ANSWERS.get(fault.kind) if fault is not None else None
        if code is not None:
            return None if rtu else exception_pdu(pdu[0] if pdu else 0, code)
        return answer(pdu, TwinTables(twin))

    def _scramble(self, unit: int, frame: bytes) -> bytes:
        fault = self._fault(unit)
        if fault is None or MEDIUM.where.get(fault.kind) is not Where.WIRE:
            return frame
        keep = 6 if len(frame) > 7 and frame[2:4] == b"\0\0" else 0  # MBAP: keep tid, length
        noise = self.rng.integers(0, 256, len(frame) - keep, dtype=np.uint8).tobytes()
        return frame[:keep] + noise

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:  # (always, inside a connection's handler)
            self._tasks.add(task)
        try:
            while True:
                header = await reader.readexactly(MBAP.size)
                tid, protocol_id, length, unit = MBAP.unpack(header)
                if protocol_id != MBAP_PROTOCOL or not (
                        MBAP_MIN_LENGTH <= length <= MBAP_MAX_LENGTH):
                    break  # not Modbus: a real device drops the connection
                pdu = await reader.readexactly(length - 1)
                response = await self._respond(unit, pdu, rtu=False)
                if response is None:
                    continue
                frame = protocol.tcp_frame(tid, unit, response)
                writer.write(self._scramble(unit, frame))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    def _rtu_readable(self) -> None:
        if self._rtu_fd is None:  # stopped
            return
        try:
            data = os.read(self._rtu_fd, 4096)
        except BlockingIOError:
            return
        except OSError:  # the other end closed (EIO on a pty): wait for it to reopen
            data = b""
        self._rtu_buffer += data
        while True:
            length = protocol.rtu_request_length(self._rtu_buffer)
            if length is None or len(self._rtu_buffer) < (length or 1):
                return
            if length == 0:
                self._rtu_buffer = b""
                return
            frame, self._rtu_buffer = self._rtu_buffer[:length], self._rtu_buffer[length:]
            if protocol.crc16(frame) != 0:  # a CRC over data + CRC leaves 0
                self._rtu_buffer = b""  # a corrupt frame: drop, answer nothing
                return
            task = self.loop.create_task(self._answer_rtu(frame[0], frame[1:-2]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer_rtu(self, unit: int, pdu: bytes) -> None:
        if unit == RTU_BROADCAST:
            return  # broadcast: never answered
        response = await self._respond(unit, pdu, rtu=True)
        if response is not None and self._rtu_fd is not None:
            os.write(self._rtu_fd, self._scramble(unit, protocol.rtu_frame(unit, response)))
