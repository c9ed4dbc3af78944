"""The Modbus TLS front: a process that terminates Modbus/TCP Security for the scan process.

Spawned and supervised by ``modbus_tls.TlsSlave``. It accepts on the listening socket the scan
process bound (``modbus.tls.port``), runs each client's TLS handshake (``server_context``: a
certificate signed by ``modbus.tls.ca`` required, ``min_version`` and up), reads the client's
CN and role from its certificate, and hands the scan process, over the channel (a Unix
SOCK_SEQPACKET socket), one end of a fresh socketpair with that identity (SCM_RIGHTS); then it
pumps bytes between the TLS connection and its own end until either side closes, and closes
the other. A failed handshake is reported on the channel instead (the scan process makes it
an aggregated event). Before any TLS byte, on accept, a client outside ``modbus.allow``, or
whose address already has ``max_per_peer`` handshakes in progress, is closed (and reported);
a full front closes its oldest handshake in progress for the newcomer. The front never
parses Modbus and never sees the register image: what a client may do is the scan
process's decision.

It never outlives the scan process (``softrelay.scan.lifeline``), and it ignores SIGINT and
SIGTERM sent to the whole group, as the telemetry does: stopping is the scan process's
decision (the stop event).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import ssl
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as StopEvent

from softrelay.config.modbus import ModbusTls
from softrelay.config.modbus_tls import server_context
from softrelay.logs import configure_logging
from softrelay.modbus.tls import handshake_reason, read_certificate
from softrelay.scan.helper import enter_helper
from softrelay.scan.lifeline import ORPHANED_EXIT, orphaned

log = logging.getLogger("softrelay.modbus.tls")

CHUNK = 65536  #: bytes moved per read, either way


class Front:
    """The TLS side of every client, on one asyncio loop."""

    def __init__(self, tls: ModbusTls, context: ssl.SSLContext, listener: socket.socket,
                 channel: socket.socket, limit: int, allow: tuple[str, ...] = (),
                 per_address: int | None = None) -> None:
        """``limit``: clients at once (handshaking or served); a newcomer beyond closes the
        oldest handshake in progress (none: the newcomer is closed, "busy"). ``allow``:
        ``modbus.allow``'s networks (empty: any); ``per_address``: handshakes in progress one
        address may have (None: no limit). A client outside ``allow``, or beyond its
        address's handshakes, is closed on accept, before any TLS byte; every refusal is
        reported on the channel."""
        self.tls = tls
        self.context = context
        self.listener = listener
        self.channel = channel
        self.limit = limit
        self.allow = [ipaddress.IPv4Network(text, strict=False) for text in allow]
        self.per_address = per_address
        self.clients: set[asyncio.Task] = set()
        #: handshakes in progress, oldest first: task -> (address, "address:port")
        self.handshaking: dict[asyncio.Task, tuple[str, str]] = {}
        self.unsent_failures = 0  #: handshake failures the channel could not take yet
        self.lost = 0  #: clients the channel could not take (closed)

    async def serve(self, stop: StopEvent, parent_pid: int) -> None:
        self.listener.setblocking(False)
        self.channel.setblocking(False)
        server = await asyncio.start_server(self._client, sock=self.listener)
        try:
            while not stop.is_set():
                if orphaned(parent_pid):
                    log.error("the scan process (pid %d) is gone: the TLS front stops",
                              parent_pid)
                    os._exit(ORPHANED_EXIT)
                await asyncio.sleep(0.1)
        finally:
            server.close()
            for task in list(self.clients):
                task.cancel()
            if self.clients:
                await asyncio.wait(list(self.clients), timeout=2.0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = _this_task()
        self.clients.add(task)
        try:
            await self._serve_client(reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # never the loop's end; said on the channel, not a traceback
            log.error("TLS client failed: %r", exc)
            with contextlib.suppress(Exception):
                address, port = writer.get_extra_info("peername")[:2]
                self._failed(f"{address}:{port}", "other", f"the TLS front failed on it "
                             f"({type(exc).__name__}: {exc})")
        finally:
            self.clients.discard(task)
            self.handshaking.pop(task, None)
            writer.transport.abort()

    def _admitted(self, address: str, peer: str) -> bool:
        """Whether a client just accepted may start its handshake (checked before any TLS
        byte): in ``allow``, under its address's handshakes, and room made when the front is
        full by closing the oldest handshake in progress."""
        if self.allow:
            try:
                ip = ipaddress.IPv4Address(address)
            except ValueError:
                ip = None
            if ip is None or not any(ip in network for network in self.allow):
                self._failed(peer, "not allowed", f"{address} is not in modbus.allow")
                return False
        if self.per_address is not None:
            same = sum(1 for a, _ in self.handshaking.values() if a == address)
            if same >= self.per_address:
                self._failed(peer, "too many handshakes", f"{address} already has {same} "
                             f"handshakes in progress (max_per_peer)")
                return False
        if len(self.clients) > self.limit:
            if not self.handshaking:
                self._failed(peer, "busy", f"the TLS front already serves {self.limit} "
                             "clients")
                return False
            oldest = next(iter(self.handshaking))
            _, oldest_peer = self.handshaking.pop(oldest)
            oldest.cancel()
            self._failed(oldest_peer, "busy", f"its handshake was closed for a newcomer: the "
                         f"TLS front had {self.limit} clients (handshaking or served)")
        return True

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        address, port = writer.get_extra_info("peername")[:2]
        if not self._admitted(address, f"{address}:{port}"):
            return
        task = _this_task()
        self.handshaking[task] = (address, f"{address}:{port}")
        try:
            await writer.start_tls(self.context,
                                   ssl_handshake_timeout=self.tls.handshake_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ssl.SSLError, a reset, a timeout: each is a refusal
            self._failed(f"{address}:{port}", *handshake_reason(exc, self.tls))
            return
        finally:
            self.handshaking.pop(task, None)
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:  # cannot happen: CERT_REQUIRED
            self._failed(f"{address}:{port}", "no certificate", "it sent no client certificate")
            return
        certificate = read_certificate(der)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        message = json.dumps({"connect": {"cn": certificate.cn, "role": certificate.role,
                                          "problem": certificate.problem, "address": address,
                                          "port": port}}).encode()
        try:
            socket.send_fds(self.channel, [message], [theirs.fileno()])
        except OSError:  # the scan process does not keep up (or is gone): this client ends
            self.lost += 1
            ours.close()
            return
        finally:
            theirs.close()
        self._flush_failures()
        inner_reader, inner_writer = await asyncio.open_unix_connection(sock=ours)
        try:
            pumps = [asyncio.create_task(self._pump(reader, inner_writer)),
                     asyncio.create_task(self._pump(inner_reader, writer))]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            inner_writer.transport.abort()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Bytes from ``source`` to ``sink`` until ``source`` ends (or either fails)."""
        with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()

    def _failed(self, peer: str, kind: str, reason: str) -> None:
        """A handshake that failed (or a client refused before it): told to the scan
        process; those the channel cannot take now are counted into the next message."""
        message = {"handshake": reason, "kind": kind, "peer": peer, "more": self.unsent_failures,
                   "lost": self.lost}
        try:
            self.channel.send(json.dumps(message).encode())
        except OSError:
            self.unsent_failures += 1
        else:
            self.unsent_failures = self.lost = 0

    def _flush_failures(self) -> None:
        """What the channel could not take earlier, sent now: failures (one message that
        counts itself and the others), or only the clients lost."""
        if self.unsent_failures:
            self.unsent_failures -= 1  # the message below carries one itself
            self._failed("(several)", "other", "earlier failures the channel could not take "
                         "then")
        elif self.lost:
            try:
                self.channel.send(json.dumps({"lost": self.lost}).encode())
            except OSError:
                pass  # still counted: sent with the next message
            else:
                self.lost = 0


def front_main(tls: ModbusTls, max_connections: int, listener: socket.socket,
               channel: socket.socket, stop: StopEvent, ready: Connection,
               avoid_cpu: int | None = None, quiet: bool = False,
               parent_pid: int | None = None, priority: int = 0,
               allow: tuple[str, ...] = (), per_address: int | None = None) -> None:
    """Entry point of the TLS front (spawned by ``TlsSlave``): ``listener`` the TLS port's
    listening socket, ``channel`` the Unix socket to the scan process, ``ready`` answered
    "ready" or why it cannot serve; ``allow`` and ``per_address`` as ``Front``'s; the rest
    as ``telemetry_main``'s."""
    parent_pid = enter_helper(parent_pid, priority, avoid_cpu, lambda: configure_logging(quiet))
    try:
        context = server_context(tls)
    except Exception as exc:  # said to the relay, which says it in one line
        ready.send(str(exc) or repr(exc))
        raise SystemExit(1) from None
    front = Front(tls, context, listener, channel, limit=max_connections + 16, allow=allow,
                  per_address=per_address)
    ready.send("ready")
    ready.close()
    asyncio.run(front.serve(stop, parent_pid))


def _this_task() -> asyncio.Task:
    """The task serving this client (``asyncio.start_server`` runs each client in one)."""
    task = asyncio.current_task()
    assert task is not None, "a client is served in a task of its own"
    return task
