"""SNMPv3 traps (pysnmp), authPriv only, with the protocols the ``snmp`` section names.

Authentication HMAC-SHA-96 (``sha``, the default) or RFC 7860's SHA-2 (``sha224`` ...
``sha512``); privacy AES-128 CFB (``aes128``, the default) or AES-192/256 CFB with the key
extension net-snmp names ``AES-192``/``AES-256`` (Blumenthal's: ``aes192``, ``aes256``) or
``AES-192-C``/``AES-256-C`` (Reeder's: ``aes192c``, ``aes256c``); see ``SnmpTrapTarget``.
Every pair is proven against net-snmp's snmptrapd (tests/test_snmp.py).

Notifications, under the configured enterprise OID ``E`` (``snmp.enterprise``):

- ``E.0.1`` protection pickup: a watched flag (``snmp.flags``, default trip and critical) set;
- ``E.0.2`` protection dropout: the flag cleared;
- ``E.0.3`` the healthy (self-supervision) contact dropped; ``E.0.4`` it made again.

Each carries ``E.1.1`` the event number (Unsigned32), ``E.1.2`` the relay's name, ``E.1.3`` the
source (``<point>.<flag>``), ``E.1.4`` the kind, ``E.1.5`` the text, ``E.1.6`` the time (UTC,
ISO 8601); the receiver's user entry names this relay's engine ID (``snmp.engine_id``).

Traps go from their own thread's event loop: a slow or unreachable receiver never holds the
telemetry's main loop. Traps are not acknowledged (use MQTT for delivery that survives an
outage); at most ``MAX_PENDING`` wait, beyond that they are dropped and counted.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading

from pysnmp.hlapi.v3arch.asyncio import (
    ContextData,
    NotificationType,
    ObjectIdentity,
    OctetString,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    Unsigned32,
    UsmUserData,
    send_notification,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmAesCfb192Protocol,
    usmAesCfb256Protocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACSHAAuthProtocol,
)

from softrelay.config.relay import RelayConfig

log = logging.getLogger("softrelay.snmp")

MAX_PENDING = 100
#: ``snmp.auth_protocol`` -> pysnmp's protocol
AUTH_PROTOCOLS = {
    "sha": usmHMACSHAAuthProtocol,
    "sha224": usmHMAC128SHA224AuthProtocol,
    "sha256": usmHMAC192SHA256AuthProtocol,
    "sha384": usmHMAC256SHA384AuthProtocol,
    "sha512": usmHMAC384SHA512AuthProtocol,
}
#: ``snmp.priv_protocol`` -> pysnmp's protocol. pysnmp's plain ``usmAesCfb256Protocol`` is
#: Reeder's key extension (net-snmp's AES-256-C), its ``Blumenthal`` one net-snmp's AES-256
PRIV_PROTOCOLS = {
    "aes128": usmAesCfb128Protocol,
    "aes192": usmAesBlumenthalCfb192Protocol,
    "aes256": usmAesBlumenthalCfb256Protocol,
    "aes192c": usmAesCfb192Protocol,
    "aes256c": usmAesCfb256Protocol,
}
PICKUP, DROPOUT, UNHEALTHY, HEALTHY = 1, 2, 3, 4


def trap_of(event: dict, flags: tuple[str, ...], healthy: bool) -> int | None:
    """Which notification an event sends (``PICKUP`` ...), or None."""
    kind, source = event["kind"], event["source"]
    if kind in ("pickup", "dropout") and source.rpartition(".")[2] in flags \
            and not source.startswith("coil."):
        return PICKUP if kind == "pickup" else DROPOUT
    if healthy and kind == "system" and source == "healthy":
        return UNHEALTHY if event["text"].startswith("NOT") else HEALTHY
    return None


class TrapSender:
    def __init__(self, config: RelayConfig) -> None:
        s = config.snmp
        if s is None:
            raise ValueError(f"relay {config.name}: no snmp section: no trap receiver")
        self.config = config
        self.settings = s
        auth, priv = s.keys()
        self.user = UsmUserData(s.user, auth, priv,
                                authProtocol=AUTH_PROTOCOLS[s.auth_protocol],
                                privProtocol=PRIV_PROTOCOLS[s.priv_protocol])
        self.engine_id = s.engine_id_for(config.name)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="snmp-traps",
                                        daemon=True)
        self._thread.start()
        self._engine = asyncio.run_coroutine_threadsafe(self._setup(), self._loop).result(10.0)

    async def _setup(self):
        s = self.settings
        transport = Udp6TransportTarget if ":" in s.host else UdpTransportTarget
        self._target = await transport.create((s.host, s.port), timeout=1, retries=0)
        return SnmpEngine(OctetString(hexValue=self.engine_id))

    def events(self, events: list[dict]) -> None:
        for event in events:
            trap = trap_of(event, self.settings.flags, self.settings.healthy)
            if trap is None:
                continue
            with self._lock:
                if self._pending >= MAX_PENDING:
                    self.dropped += 1
                    continue
                self._pending += 1
            asyncio.run_coroutine_threadsafe(self._send(trap, event), self._loop)

    async def _send(self, trap: int, event: dict) -> None:
        e = self.settings.enterprise
        when = datetime.datetime.fromtimestamp(event["wall"], datetime.timezone.utc)
        notification = NotificationType(ObjectIdentity(f"{e}.0.{trap}")).add_varbinds(
            (f"{e}.1.1", Unsigned32(event["seq"] % 2**32)),
            (f"{e}.1.2", OctetString(self.config.name)),
            (f"{e}.1.3", OctetString(event["source"])),
            (f"{e}.1.4", OctetString(event["kind"])),
            (f"{e}.1.5", OctetString(event["text"][:255])),
            (f"{e}.1.6", OctetString(when.isoformat(timespec="milliseconds"))))
        try:
            error, *_ = await send_notification(self._engine, self.user, self._target,
                                                ContextData(), "trap", notification)
        except Exception as exc:  # never let one trap end the loop
            error = exc
        with self._lock:
            self._pending -= 1
            if error:
                self.failed += 1
            else:
                self.sent += 1
        if error:
            log.warning("SNMP trap for event #%s not sent: %s", event["seq"], error)

    def figures(self) -> list[tuple[str, str, float, str]]:
        return [("snmp_traps_sent", "SNMPv3 traps sent", self.sent, "counter"),
                ("snmp_traps_failed", "SNMPv3 traps that could not be sent", self.failed,
                 "counter"),
                ("snmp_traps_dropped", "SNMPv3 traps dropped (too many waiting)", self.dropped,
                 "counter")]

    def close(self, timeout: float = 2.0) -> None:
        """Let the traps on their way go (up to ``timeout``), then close the engine and stop the
        loop."""
        async def settle() -> None:
            for _ in range(int(timeout / 0.02)):
                if self._pending == 0:
                    break
                await asyncio.sleep(0.02)
            self._engine.close_dispatcher()  # its timer task ends here, not at exit
            await asyncio.sleep(0)  # the cancelled task runs to its end

        asyncio.run_coroutine_threadsafe(settle(), self._loop).result(timeout + 1.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
