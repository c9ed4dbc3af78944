"""The Modbus/TCP slave of a running relay: the compiled network thread and its write worker.

Reads (01 02 03 04, 43/14) are answered by the compiled thread straight from the register image
in the snapshot (``softrelay._mbserver``): no Python, no GIL, one scan's words per response.
Before the first scan's snapshot is published, reads answer exception 06 (server device busy).
Writes (05 06 15 16 23) come to the write worker, a Python thread that answers them with the
readable specification (``pdu.SlaveLogic``) and ``writes.RelayWrites``: commands and
settings queued for the next scan, the access codes, all-or-nothing. Writes are rare; reads,
which a DCS sends many times a second, never touch the interpreter the scan runs in.

Each connection is a session of its own (``authority.Session.tcp``: the server's slot and
generation, and the peer "a.b.c.d:port"): a level earned by a code is that connection's, and
the worker drops it as soon as the server says the connection is closed (``is_open``, checked
at every idle turn, at most every 0.2 s). Refused connections (not in the allowlist) are
recorded aggregated from the server's counter: the compiled server counts them but keeps
neither the reason nor the address.

The compiled thread cannot be crashed or starved by a peer (``ext/softrelay/mbserver.h``): at
most ``MAX_PENDING`` writes wait for this worker (beyond: exception 06, server busy); a closed
connection's writes are dropped with it; a connection is not read while its answers wait
(dropped after ``frame_timeout`` if it never takes them); one address holds at most
``max_per_peer`` connections and a newcomer that finds the server full closes the longest idle.

With ``modbus.tls`` the same server also serves Modbus/TCP Security clients
(``modbus_tls.TlsSlave``: a front process terminates TLS and hands each authenticated
client's connection over): their writes name ``tls:CN=<cn>(<role>)@<address>:<port>`` and
their sessions hold the level their certificate's role gives. ``modbus.port: null`` serves
TLS only.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading

import numpy as np

from softrelay.config.modbus import ModbusSlave
from softrelay.image.shared import SharedImage
from softrelay.image.snapshot import MODBUS_COUNTERS, published
from softrelay.modbus.authority import Session
from softrelay.modbus.pdu import SlaveLogic
from softrelay.modbus.protocol import DEVICE_FAILURE, exception_pdu
from softrelay.modbus.register_image import IMAGE_PREFIX, group_prefix, register_image
from softrelay.modbus.regmap import TABLES, RegisterMap
from softrelay.modbus.writes import RelayWrites
from softrelay.scan.realtime import leave_realtime

log = logging.getLogger("softrelay.modbus")


def identity_objects(logic: SlaveLogic) -> bytes:
    return b"".join(bytes([k, len(v.encode())]) + v.encode()
                    for k, v in sorted(logic.identity.items()))


def listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except PermissionError:
        sock.close()
        raise PermissionError(f"cannot bind {host}:{port}: ports below 1024 need root or the "
                              "CAP_NET_BIND_SERVICE capability") from None
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot bind the Modbus slave to {host}:{port}: "
                                 f"{exc.strerror}") from None
    sock.listen(socket.SOMAXCONN)  # 4096: back-to-back connects never wait for a SYN retry
    return sock


class TlsPortError(OSError):
    """The TLS port (``modbus.tls.port``) cannot be listened on (the plain one could)."""


class SlaveService:
    def __init__(self, config: ModbusSlave, maps: dict[str, RegisterMap],
                 snapshot: SharedImage, writes: RelayWrites, avoid_cpu: int | None = None,
                 *, quiet: bool = False, helper_priority: int = 0) -> None:
        """``maps``: the register images in the snapshot by prefix (``register_maps``);
        ``quiet`` and ``helper_priority``: the TLS front's, as the telemetry's. An OSError
        when a port cannot be listened on (``TlsPortError``: the TLS one)."""
        from softrelay._mbserver import FAULTS, ModbusServer

        self.config = config
        self.snapshot = snapshot.reader()  # the write worker's own copy buffers
        self.writes = writes
        prefixes = list(maps)
        self.logic = {prefix: SlaveLogic(regmap) for prefix, regmap in maps.items()}
        images = []
        for prefix, regmap in maps.items():
            sizes = [regmap.size(t) for t in TABLES]
            mapped = [(self.logic[prefix].entry_at[t][:max(n, 1)] >= 0).astype(np.uint8)
                      for t, n in zip(TABLES, sizes, strict=True)]
            images.append(([snapshot.offsets[prefix + t] for t in TABLES], sizes, mapped))
        self.prefix_of: dict[int, str] = {}
        for unit in range(256):
            if unit in config.groups:
                self.prefix_of[unit] = group_prefix(unit)
            elif unit in config.units or (not config.units and not config.groups):
                self.prefix_of[unit] = IMAGE_PREFIX
        units = [prefixes.index(self.prefix_of[u]) if u in self.prefix_of else -1
                 for u in range(256)]
        allow = []
        for text in config.allow:
            network = ipaddress.IPv4Network(text, strict=False)
            allow.append((int(network.network_address), int(network.netmask)))
        self.server = ModbusServer(snapshot.region, images, units,
                                   identity_objects(self.logic[IMAGE_PREFIX]),
                                   None if config.port is None else
                                   listener(config.host, config.port),
                                   config.max_connections, config.idle_timeout,
                                   config.frame_timeout, allow, avoid_cpu,
                                   None if config.max_per_peer is None else
                                   min(config.max_per_peer, config.max_connections))
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._refused = 0  #: the server's refused-connection count already recorded
        self._faults = FAULTS
        self._faults_reported = 0
        self.tls = None  #: modbus_tls.TlsSlave, with modbus.tls
        if config.tls is not None:
            from softrelay.modbus.tls import TlsSlave

            try:
                self.tls = TlsSlave(config, self.server, writes.authority, writes.record
                                    or (lambda *a, **k: None), avoid_cpu, quiet,
                                    helper_priority)
            except OSError as exc:
                self.server.stop()
                raise TlsPortError(exc.errno, exc.strerror or str(exc)) from None
            except BaseException:
                self.server.stop()
                raise

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tls_port(self) -> int | None:
        """The TLS port (Modbus/TCP Security), when configured."""
        return self.tls.port if self.tls is not None else None

    def start(self) -> None:
        """The network thread, the write worker and, with TLS, the front (RuntimeError with
        the reason when it cannot serve)."""
        self.server.start()
        self._worker = threading.Thread(target=self._serve_writes, name="modbus-writes",
                                        daemon=True)
        self._worker.start()
        if self.config.port is not None:
            log.info("Modbus slave listening on %s:%d", self.config.host, self.port)
        if self.tls is not None:
            self.tls.start()

    def _idle(self) -> None:
        """Between writes: drop the levels of closed connections, expire levels, record the
        refused connections and the aggregated refusals."""
        authority = self.writes.authority
        for key in authority.held_keys():
            # a TCP session's key is ("tcp", slot, generation) (``Session.tcp``)
            if isinstance(key, tuple) and key[0] == "tcp" \
                    and not self.server.is_open(key[1], key[2]):
                authority.drop(key, "connection closed")
        refused = self.server.counters["refused"]
        if refused > self._refused:
            authority.refusals.refuse(
                "connection refused", f"{self.config.host}:{self.port or self.tls_port}",
                "connection refused: not in the allowlist, or the server full at "
                f"{self.config.max_connections} connections (the server keeps no address)",
                refused - self._refused)
            self._refused = refused
        authority.tick()

    def _serve_writes(self) -> None:
        leave_realtime()  # not at the scan's priority, which it inherits
        while not self._stop.is_set():
            item = self.server.next_write(0.2)
            try:
                self._idle()
            except Exception:  # never kill the worker
                log.exception("Modbus session upkeep failed")
            if item is None:
                self._report_faults()
                continue
            slot, generation, frame, peer = item
            session = (self.tls.session(slot, generation, peer)
                       if self.tls is not None and peer.startswith("tls:")
                       else Session.tcp(slot, generation, peer))
            writes = self.writes.for_session(session)
            try:
                prefix = self.prefix_of[frame[6]]  # the network thread sends only these
                image = (register_image(self.snapshot.read(), prefix)
                         if published(self.snapshot) else None)  # None: 23 answers busy
                answer = self.logic[prefix].respond(frame[7:], image, writes)
            except Exception:  # never leave a client waiting, never kill the worker
                log.exception("Modbus write failed")
                answer = exception_pdu(frame[7], DEVICE_FAILURE)
            self.server.complete(slot, generation, frame[:7], answer)

    def _report_faults(self) -> None:
        """Log each fault of the network thread once (it still serves: they cost timing)."""
        faults = self.server.counters["faults"] & ~self._faults_reported
        for bit, reason in self._faults.items():
            if faults & bit:
                log.warning("Modbus slave: %s; it keeps serving", reason)
        self._faults_reported |= faults

    def counters(self) -> dict[str, int]:
        """The snapshot's Modbus counters (``MODBUS_COUNTERS``), from one consistent copy of
        the network thread's."""
        counters = self.server.counters
        return {name: counters[name] for name in MODBUS_COUNTERS}

    def stop(self) -> None:
        self._stop.set()
        if self.tls is not None:
            self.tls.stop()  # first: no client is handed over to a stopped server
        self.server.stop()
        if self._worker is not None:
            self._worker.join(2.0)
            self._worker = None
        self.snapshot.close()
