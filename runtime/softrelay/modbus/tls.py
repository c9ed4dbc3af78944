"""Modbus/TCP Security ("mbaps", the Modbus Organization's TLS profile, port 802): the slave's map
over TLS with mutual certificates, the client's role read from its certificate.

Two halves, so that TLS never runs in the scan's interpreter:

- the **front** (``softrelay.modbus.tls_front``), a process of its own like the telemetry: it
  accepts on ``modbus.tls.port`` (the socket is bound here, by the scan process, so a port it
  cannot take stops the start, and a restarted front keeps it), requires a client certificate
  signed by ``modbus.tls.ca`` (TLS ``min_version`` and up), reads the client's subject CN and
  its role (extension ``MODBUS_ROLE_OID``, an ASN.1 UTF8String), and for each authenticated
  client makes a socketpair, hands one end with the identity to the scan process over a Unix
  socket (SCM_RIGHTS) and pumps bytes between TLS and its own end. Failed handshakes are
  reported over the same socket.
- ``TlsSlave`` here, in the scan process: a thread that receives each end and its identity,
  registers the identity under the connection's generation and hands the end to the compiled
  server (``ModbusServer.adopt``) in one critical section, which the write worker also enters
  before it looks an identity up (``identity``): no write is ever served before its session's
  level is known. The connection is then served like an accepted one (the allowlist,
  ``max_connections`` and ``max_per_peer`` apply to the client's address), and its writes
  name it ``tls:CN=<cn>(<role>)@<address>:<port>``.

The session's level is the one ``modbus.tls.roles`` gives its role, for the life of the
connection (``Authority.certify``); a code written on it may raise it as on a plain session.
A certificate without a role, or with a role not in ``roles``, reads only, and an event says
so (aggregated like refusals). Failed handshakes (no client certificate, another CA, an old
TLS version, not TLS at all) are events, aggregated (``authority.RefusalLog``), and counted.

A dead front is an event and is started again (at most every 10 s); the plain port and the
scan go on meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import socket
import ssl
import threading
import time
import unicodedata
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from softrelay.config.modbus import MODBUS_ROLE_OID, ModbusSlave, ModbusTls
from softrelay.config.modbus_tls import ssl_reason as _ssl_reason
from softrelay.modbus.authority import READ, Authority, Session, level_text

log = logging.getLogger("softrelay.modbus.tls")

#: s between two starts of a front that keeps dying
RESTART_EVERY = 10.0
#: one message on the channel, at most (an identity, or a handshake failure)
MESSAGE_BYTES = 4096
#: the longest role taken from a certificate (as ``config.modbus.Role``); longer: reads only
ROLE_CHARACTERS = 64


# ---------------------------------------------------------------- certificates


def _utf8string(der: bytes) -> str | None:
    """The text of a DER ASN.1 UTF8String (tag 0x0C), or None when ``der`` is not exactly
    one."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, at = der[1], 2
    if length & 0x80:  # the long form: the next (length & 0x7F) bytes
        n = length & 0x7F
        if n < 1 or n > 3 or len(der) < 2 + n:
            return None
        length, at = int.from_bytes(der[2:2 + n], "big"), 2 + n
    if len(der) != at + length:
        return None
    try:
        return der[at:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _printable(text: str, most: int) -> str:
    """``text`` fit for an event: control characters replaced, at most ``most`` characters."""
    clean = "".join("?" if unicodedata.category(c).startswith("C") else c for c in text)
    return clean if len(clean) <= most else clean[:most - 1] + "~"


@dataclass(frozen=True)
class Certificate:
    """What the relay reads from a client's certificate: its subject CN and its role (None:
    none readable, ``problem`` says why)."""

    cn: str
    role: str | None
    problem: str | None = None


def read_certificate(der: bytes) -> Certificate:
    """The CN and the Modbus role of a (verified) client certificate in DER."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return Certificate("(unreadable)", None, f"its certificate cannot be read ({exc})")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = _printable(str(names[0].value), 48) if names else "(no CN)"
    try:
        extension = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(MODBUS_ROLE_OID))
    except x509.ExtensionNotFound:
        return Certificate(cn, None, f"its certificate has no role (extension {MODBUS_ROLE_OID})")
    except x509.DuplicateExtension as exc:
        if exc.oid.dotted_string == MODBUS_ROLE_OID:
            return Certificate(cn, None, f"its certificate has several role extensions "
                                         f"({MODBUS_ROLE_OID}): which one holds is not "
                                         "decided, none is taken")
        return Certificate(cn, None, "its certificate's extensions cannot be read (extension "
                                     f"{exc.oid.dotted_string} twice)")
    except Exception as exc:  # a malformed extension elsewhere in it, whatever it raises
        return Certificate(cn, None, "its certificate's extensions cannot be read "
                                     f"({_printable(str(exc) or type(exc).__name__, 120)})")
    raw = getattr(extension.value, "value", b"")
    role = _utf8string(raw)
    if role is None or not role:
        return Certificate(cn, None, f"its role extension ({MODBUS_ROLE_OID}) is not an "
                                     "ASN.1 UTF8String")
    if len(role) > ROLE_CHARACTERS:
        return Certificate(cn, None, f"its role is {len(role)} characters long (a role in "
                                     f"modbus.tls.roles has at most {ROLE_CHARACTERS})")
    return Certificate(cn, role)


@dataclass(frozen=True)
class Identity:
    """An authenticated TLS client: its certificate's CN and role, its address and port, and
    the level its role gives (``problem``: why it reads only, when it does)."""

    cn: str
    role: str | None
    address: str
    port: int
    level: int
    problem: str | None = None

    @property
    def label(self) -> str:
        """Who it is in events: ``tls:CN=dcs1(engineer)@10.0.0.5:50312``."""
        role = _printable(self.role, 32) if self.role is not None else "no role"
        return f"tls:CN={self.cn}({role})@{self.address}:{self.port}"


def level_of(certificate: Certificate, roles: dict[str, int]) -> tuple[int, str | None]:
    """The level a certificate's role gives, and why it reads only when it does."""
    if certificate.role is None:
        return READ, certificate.problem
    if certificate.role not in roles:
        return READ, (f"its role {certificate.role!r} is not in modbus.tls.roles "
                      f"({', '.join(sorted(roles)) or 'none given'})")
    return roles[certificate.role], None


# ---------------------------------------------------------------- the server's TLS


#: OpenSSL's X509_V_ERR codes that are not "another CA": (kind, the reason)
VERIFY_REASONS = {
    3: ("no CRL", "modbus.tls.crl has no CRL of its certificate's CA: add that CA's CRL"),
    8: ("CRL signature", "the CRL of its CA in modbus.tls.crl has a bad signature"),
    11: ("CRL out of date", "the CRL of its CA in modbus.tls.crl is not valid yet"),
    12: ("CRL out of date", "the CRL of its CA in modbus.tls.crl has expired: fetch a "
                            "new one"),
    9: ("not yet valid", "its certificate is not valid yet (check its notBefore and the "
                         "clocks)"),
    10: ("expired", "its certificate has expired: issue it a new one"),
    13: ("bad dates", "its certificate's notBefore cannot be read"),
    14: ("bad dates", "its certificate's notAfter cannot be read"),
    23: ("revoked", "its certificate is revoked"),
    24: ("CA not a CA", "a certificate in its chain is not a CA (basicConstraints)"),
    25: ("chain too long", "its chain is longer than its CA allows (pathLenConstraint)"),
    26: ("purpose", "its certificate is not for TLS clients (extendedKeyUsage: give it "
                    "clientAuth)"),
    34: ("critical extension", "its certificate has a critical extension the relay does "
                               "not know (the role extension must not be critical)"),
}


def handshake_reason(exc: BaseException, tls: ModbusTls) -> tuple[str, str]:
    """Why a client's handshake failed: (its kind, one of a few, which refusals aggregate
    by; the text, in the words of who has to fix it)."""
    text = f"{_ssl_reason(exc)} {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        detail = getattr(exc, "verify_message", None)
        code = getattr(exc, "verify_code", None)
        if code in VERIFY_REASONS:
            kind, words = VERIFY_REASONS[code]
            return kind, words
        return "another CA", ("its certificate is not signed by modbus.tls.ca"
                              + (f" ({detail})" if detail else ""))
    if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in text or "CERTIFICATE_REQUIRED" in text:
        return "no certificate", ("it sent no client certificate (one signed by "
                                  "modbus.tls.ca is required)")
    if any(k in text for k in ("UNSUPPORTED_PROTOCOL", "PROTOCOL_VERSION", "VERSION_TOO_LOW")):
        return "TLS version", f"it offers no TLS version from {tls.min_version} up"
    if any(k in text for k in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL",
                               "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")):
        return "not TLS", "it does not speak TLS (plain Modbus/TCP on the TLS port?)"
    if "NO_SHARED_CIPHER" in text:
        return "cipher", "no cipher suite in common"
    if isinstance(exc, (TimeoutError, ConnectionAbortedError)) or "longer than" in text:
        return "timeout", f"no handshake within {tls.handshake_timeout:g} s"
    if isinstance(exc, (ConnectionError, EOFError)) or "EOF" in text:
        return "closed", "it closed the connection during the handshake"
    return "other", _ssl_reason(exc)


# ---------------------------------------------------------------- the scan process's half


def per_peer(config: ModbusSlave) -> int:
    """The connections one address may hold, as the compiled server applies it (none: half
    of ``max_connections``, at least 1; at most ``max_connections``): also the handshakes in
    progress one address may have at the front."""
    from softrelay._mbserver import default_per_peer

    if config.max_per_peer is None:
        return default_per_peer(config.max_connections)
    return min(config.max_per_peer, config.max_connections)


class TlsSlave:
    """The scan process's half: binds the TLS port, runs and supervises the front, adopts
    each authenticated client into the compiled server (``slave.server``) with its
    identity registered first. ``start()``, ``stop()`` (safe twice)."""

    def __init__(self, config: ModbusSlave, server, authority: Authority, record,
                 avoid_cpu: int | None = None, quiet: bool = False, priority: int = 0) -> None:
        """``server``: the ``ModbusServer`` adopted connections go to; ``record``: the
        event recorder's ``record``."""
        from softrelay.modbus.tcp_slave import listener

        assert config.tls is not None
        self.config = config
        self.tls = config.tls
        self.server = server
        self.authority = authority
        self.record = record
        self.avoid_cpu, self.quiet, self.priority = avoid_cpu, quiet, priority
        self.listener = listener(config.host, self.tls.port)  # OSError: the caller says it
        self.port: int = self.listener.getsockname()[1]
        self.channel, self._front_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.channel.settimeout(0.2)
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._front: BaseProcess | None = None  #: the front process, while one runs
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: str | None = None
        self._stopping = threading.Event()
        #: held while a connection is adopted and its identity registered, and while the
        #: write worker looks one up: no write is served before its level is known
        self._registering = threading.Lock()
        self._identities: dict[int, Identity] = {}  #: by the connection's generation
        self.counters = {"handshakes": 0, "handshake_failures": 0, "adopted": 0,
                         "not_adopted": 0, "read_only": 0, "front_restarts": 0, "faults": 0}
        self._last_fault = -1e9
        self._faults_unsaid = 0

    # ------------------------------------------------------------ life

    def start(self, within: float = 30.0) -> None:
        """Start the front (from a thread of this object's, which lives until ``stop``: the
        front dies with the thread that started it) and wait until it serves. RuntimeError
        with the front's reason when it does not."""
        self._thread = threading.Thread(target=self._run, name="modbus-tls", daemon=True)
        self._thread.start()
        if not self._started.wait(within):
            self._start_error = f"the TLS front was not ready within {within:g} s"
        if self._start_error is not None:
            self.stop()
            raise RuntimeError(self._start_error)
        log.info("Modbus/TCP Security (TLS) on %s:%d", self.config.host, self.port)

    def _spawn(self) -> str | None:
        """Start a front; None when it serves, else why not."""
        from softrelay.modbus.tls_front import front_main
        from softrelay.scan import realtime

        answer, ready = self._ctx.Pipe(duplex=False)
        self._front = front = self._ctx.Process(
            target=front_main, name="softrelay-tls",
            args=(self.tls, self.config.max_connections, self.listener, self._front_end,
                  self._stop, ready, self.avoid_cpu, self.quiet, os.getpid(), self.priority,
                  self.config.allow, per_peer(self.config)),
            daemon=True)
        with realtime.at_normal_priority():
            front.start()
        ready.close()
        try:
            said = answer.recv() if answer.poll(30.0) else "no answer in 30 s"
        except EOFError:
            said = f"it exited (code {front.exitcode})"
        finally:
            answer.close()
        return None if said == "ready" else f"the TLS front did not start: {said}"

    def _run(self) -> None:
        from softrelay.scan.realtime import leave_realtime

        leave_realtime()
        try:
            self._start_error = self._spawn()
        except Exception as exc:  # said by start()
            self._start_error = f"the TLS front did not start: {exc}"
        self._started.set()
        if self._start_error is not None:
            return
        next_restart = 0.0  # a first death restarts at once; then at most every 10 s
        last_sweep = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    self._receive()
                    now = time.monotonic()
                    if now - last_sweep >= 0.5:
                        last_sweep = now
                        self._sweep()
                    front = self._front
                    if front is not None and not front.is_alive() \
                            and not self._stopping.is_set() and now >= next_restart:
                        next_restart = now + RESTART_EVERY
                        self._restart(front.exitcode)
                except Exception as exc:  # never the supervisor's end: the port stays served
                    self._fault(f"the Modbus TLS supervisor failed ({type(exc).__name__}: "
                                f"{exc}); it goes on")
                    time.sleep(0.2)
        finally:
            self._end_front()

    def _fault(self, text: str) -> None:
        """A fault of the TLS half: an event (at most one a second, the others counted into
        the next), and counted."""
        self.counters["faults"] += 1
        now = time.monotonic()
        if now - self._last_fault < 1.0:
            self._faults_unsaid += 1
            return
        more = f" ({self._faults_unsaid} more since the last one)" if self._faults_unsaid else ""
        self._last_fault, self._faults_unsaid = now, 0
        self.record("fault", "modbus", _printable(text, 300) + more)

    def _restart(self, code: int | None) -> None:
        self.counters["front_restarts"] += 1
        self.record("fault", "modbus", f"the Modbus TLS front exited (code {code}): TLS "
                    f"clients on port {self.port} are cut off; starting it again")
        try:
            why = self._spawn()
        except Exception as exc:
            why = str(exc)
        if why is not None:
            self.record("fault", "modbus", f"the Modbus TLS front not started again: {why} "
                        f"(tried again in {RESTART_EVERY:g} s)")

    def _end_front(self) -> None:
        self._stop.set()
        front = self._front
        if front is not None and front.pid is not None:
            front.join(5.0)
            if front.is_alive():
                front.kill()
                front.join(5.0)
        self._front = None

    def stop(self) -> None:
        """The front stopped, the port and the channel closed; safe to call twice."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(15.0)
            self._thread = None
        elif self._front is not None:
            self._end_front()
        for sock in (self.channel, self._front_end, self.listener):
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def front_alive(self) -> bool:
        front = self._front
        return front is not None and front.is_alive()

    # ------------------------------------------------------------ messages from the front

    def _receive(self) -> None:
        """One message from the front, if one comes within 0.2 s: a client to adopt, or
        handshake failures to record. A message that cannot be used (truncated, its
        descriptor discarded: the scan process out of descriptors, not JSON, not of the
        front's form) is dropped with a fault event; every descriptor it brought is closed
        (the client sees the end) and a connect among them counted in ``not_adopted``."""
        try:
            data, fds, flags, _address = socket.recv_fds(self.channel, MESSAGE_BYTES, 4)
        except (TimeoutError, BlockingIOError, InterruptedError):
            return
        except OSError:
            if not self._stopping.is_set():
                time.sleep(0.2)  # the channel is ours: only a stop closes it
            return
        try:
            self._handle(data, fds, flags)
        except Exception as exc:  # a message of no known form: dropped, said
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._dropped(data, bool(fds), f"{type(exc).__name__}: {exc}")

    def _dropped(self, data: bytes, connect: bool, why: str) -> None:
        if connect or data.startswith(b'{"connect"'):
            self.counters["not_adopted"] += 1
            self.authority.refusals.refuse(
                "TLS client not adopted", "the TLS front",
                f"TLS client not served: the front's message was dropped ({why})")
        else:
            self._fault(f"a message from the Modbus TLS front dropped ({why}): "
                        f"{data[:60]!r}")

    def _handle(self, data: bytes, fds: list[int], flags: int) -> None:
        """``_receive``'s message; raises on one of no known form (``fds`` are then
        closed by the caller, unless taken)."""
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ValueError("its descriptor was discarded (the scan process is out of "
                             "descriptors?)" if flags & socket.MSG_CTRUNC else
                             f"longer than {MESSAGE_BYTES} bytes, truncated")
        message = json.loads(data.decode()) if data else {}
        if not isinstance(message, dict):
            raise ValueError(f"a JSON {type(message).__name__}, not an object")
        if "connect" in message:
            if len(fds) != 1:
                raise ValueError(f"a connect with {len(fds)} descriptors, not 1")
            fd = fds.pop()
            self._adopt(fd, message["connect"])
            return
        if fds:
            raise ValueError(f"{len(fds)} descriptors with no connect")
        if "handshake" in message:  # aggregated per kind: each cause is seen at once
            n = 1 + int(message.get("more", 0))
            self.counters["handshake_failures"] += n
            self.authority.refusals.refuse(
                f"TLS handshake refused ({_printable(str(message.get('kind', 'other')), 32)})",
                _printable(str(message.get("peer", "?")), 64),
                f"TLS handshake refused on port {self.port}: "
                f"{_printable(str(message['handshake']), 300)}", n)
        if message.get("lost"):  # clients the front could not hand over (channel full)
            self.counters["not_adopted"] += int(message["lost"])

    def _adopt(self, fd: int, what: dict) -> None:
        """Register the client's identity and hand its end to the server, in one critical
        section (see ``identity``). ``fd`` is this method's: closed when not adopted."""
        self.counters["handshakes"] += 1
        try:
            role, problem = what.get("role"), what.get("problem")
            if not (role is None or isinstance(role, str)) or \
                    not (problem is None or isinstance(problem, str)):
                raise TypeError("its role or problem is not text")
            certificate = Certificate(_printable(str(what["cn"]), 48), role, problem)
            address, port = str(what["address"]), int(what["port"])
            level, problem = level_of(certificate, self.tls.roles)
        except Exception as exc:
            os.close(fd)
            self._dropped(b"", True, f"a connect of no known form ({type(exc).__name__}: "
                                     f"{exc})")
            return
        identity = Identity(certificate.cn, certificate.role, address, port, level, problem)
        with self._registering:
            try:
                generation = self.server.adopt(fd, address, port, identity.label)
            except (OSError, ValueError) as exc:  # the fd is closed: the client sees the end
                generation = None
                why = str(exc)
            else:
                self._identities[generation] = identity
        if generation is None:
            self.counters["not_adopted"] += 1
            self.authority.refusals.refuse("connection refused", identity.label,
                                           f"TLS client not served: {why}")
            return
        self.counters["adopted"] += 1
        if problem is not None:
            self.counters["read_only"] += 1
            self.authority.refusals.refuse(
                "TLS client reads only", identity.label,
                f"TLS client {identity.label} reads only ({level_text(READ)}): {problem}")
        else:
            self.record("system", "modbus", f"TLS client {identity.label} connected: "
                        f"{level_text(level)} by its role {certificate.role!r}")

    def _sweep(self) -> None:
        """Forget the identities of connections that are gone (refused or closed)."""
        with self._registering:
            generations = list(self._identities)
        gone = [g for g in generations if self.server.adopted_slot(g) == -2]
        if gone:
            with self._registering:
                for g in gone:
                    self._identities.pop(g, None)

    # ------------------------------------------------------------ the write worker's side

    def identity(self, generation: int) -> Identity | None:
        """The identity of the adopted connection ``generation`` (waits, briefly, while it is
        being registered)."""
        with self._registering:
            return self._identities.get(generation)

    def session(self, slot: int, generation: int, label: str) -> Session:
        """The session of a write from an adopted connection, certified with its role's
        level (for the connection's life). Lockout counts against the client's address."""
        identity = self.identity(generation)
        if identity is None:  # cannot happen: registered before it was adopted
            return Session(("tcp", slot, generation), label, label)
        session = Session(("tcp", slot, generation), identity.label, identity.address)
        if identity.level > READ and not self.authority.certified(session.key):
            self.authority.certify(session, identity.level)
        return session
