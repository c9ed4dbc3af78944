"""The configuration of what watches the relay from outside: Prometheus metrics, MQTT, SNMP traps.

Each section is off when absent. They are served by the telemetry process
(``softrelay.telemetry``), never by the scan's. Secrets (the MQTT password, the SNMP keys) can
be given in the file or, better, named by an environment variable (``*_env``, e.g. from the
service's EnvironmentFile) that wins when set.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_serializer, model_validator

from softrelay.config.base import STRICT

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\-_]+$")]


def secret(value: str | None, env: str | None) -> str | None:
    """The environment variable's value when it is named and set, else the file's value."""
    if env and os.environ.get(env):
        return os.environ[env]
    return value


def _bind_address(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host {host!r} is not an IP address to bind") from None
    return host


class Metrics(BaseModel):
    """The Prometheus exposition endpoint (``GET /metrics``)."""

    model_config = STRICT
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 for every interface")
    port: int = Field(9650, ge=0, le=65535, description="0: any free port (tests)")

    @model_validator(mode="after")
    def _host(self) -> Metrics:
        _bind_address(self.host)
        return self


class MqttTls(BaseModel):
    """TLS to the broker: the CA that signed its certificate, and this relay's certificate when
    the broker asks for one."""

    model_config = STRICT
    ca: Path = Field(description="CA certificate (PEM) the broker's certificate must chain to")
    cert: Path | None = Field(None, description="client certificate (PEM)")
    key: Path | None = Field(None, description="client private key (PEM)")
    min_version: Literal["1.2", "1.3"] = Field("1.2", description="the oldest TLS version "
                                               "accepted; 1.3: a broker that offers only "
                                               "1.2 is refused")

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both cert and key (client certificate) or neither")
        return self


class MqttQueue(BaseModel):
    """Events not yet acknowledged by the broker, kept on disk (SQLite) across outages and
    restarts; the oldest are dropped, and counted, beyond ``max_events``."""

    model_config = STRICT
    file: Path = Field(Path("mqtt-queue.sqlite"), description="relative: in the state "
                       "directory (state.dir)")
    max_events: int = Field(10000, ge=10, le=10_000_000)


class Mqtt(BaseModel):
    """MQTT publisher: ``<topic>/status`` (retained; the last will says offline),
    ``<topic>/telemetry`` every ``telemetry_every`` seconds, ``<topic>/events`` as they
    happen."""

    model_config = STRICT
    host: Host
    port: int | None = Field(None, ge=1, le=65535, description="default 1883, 8883 with tls")
    topic: str | None = Field(None, pattern=r"^[^#+\s]+$", description="topic prefix; "
                              "default softrelay/<relay name>")
    client_id: str | None = Field(None, min_length=1, max_length=64,
                                  description="default softrelay-<relay name>")
    username: str | None = None
    password: str | None = Field(None, description="see password_env to keep it out of the file")
    password_env: EnvName | None = None
    qos: Literal[0, 1, 2] = Field(1, description="of events and status; 1 or 2 for the "
                                  "queue to know what the broker has")
    telemetry_every: float = Field(5.0, ge=0.1, le=3600.0, description="s")
    keepalive: int = Field(30, ge=5, le=3600, description="s; the broker publishes the last "
                           "will after 1.5 times this without a word")
    tls: MqttTls | None = None
    queue: MqttQueue = MqttQueue()

    def password_value(self) -> str | None:
        return secret(self.password, self.password_env)

    @property
    def broker_port(self) -> int:
        """The configured port, else MQTT's: 8883 with TLS, 1883 without."""
        return self.port or (8883 if self.tls is not None else 1883)

    def prefix(self, relay_name: str) -> str:
        """The topic prefix: the configured one, else softrelay/<relay name>."""
        return self.topic or f"softrelay/{relay_name}"


@dataclass(frozen=True)
class SnmpAuth:
    """An SNMPv3 authentication protocol: its name in net-snmp (snmptrapd.conf's
    ``createUser``, ``snmptrap -a``), its RFC name, and the length of its hash (the localized
    key, from which the privacy key is cut), bytes."""

    net_snmp: str
    rfc: str
    hash_bytes: int


@dataclass(frozen=True)
class SnmpPriv:
    """An SNMPv3 privacy protocol: its name in net-snmp (``createUser``, ``snmptrap -x``), its
    AES key length, bytes, and how a localized key shorter than that is extended (None: RFC
    3826's AES-128 needs no extension)."""

    net_snmp: str
    key_bytes: int
    extension: str | None


#: ``snmp.auth_protocol``: RFC 3414's HMAC-SHA-96 and RFC 7860's SHA-2 family
SNMP_AUTH: dict[str, SnmpAuth] = {
    "sha": SnmpAuth("SHA", "HMAC-SHA-96 (RFC 3414)", 20),
    "sha224": SnmpAuth("SHA-224", "HMAC-128-SHA-224 (RFC 7860)", 28),
    "sha256": SnmpAuth("SHA-256", "HMAC-192-SHA-256 (RFC 7860)", 32),
    "sha384": SnmpAuth("SHA-384", "HMAC-256-SHA-384 (RFC 7860)", 48),
    "sha512": SnmpAuth("SHA-512", "HMAC-384-SHA-512 (RFC 7860)", 64),
}
BLUMENTHAL = "Blumenthal (draft-blumenthal-aes-usm-04)"
REEDER = "Reeder (draft-reeder-snmpv3-usm-3desede-00, Cisco's)"
#: ``snmp.priv_protocol``: AES-128 CFB (RFC 3826); AES-192 and AES-256 CFB were only ever
#: drafts, whose two ways of extending a short key are not interoperable: net-snmp's
#: ``AES-256`` is Blumenthal's, ``AES-256-C`` Reeder's (Cisco's), and so are ours
SNMP_PRIV: dict[str, SnmpPriv] = {
    "aes128": SnmpPriv("AES", 16, None),
    "aes192": SnmpPriv("AES-192", 24, BLUMENTHAL),
    "aes256": SnmpPriv("AES-256", 32, BLUMENTHAL),
    "aes192c": SnmpPriv("AES-192-C", 24, REEDER),
    "aes256c": SnmpPriv("AES-256-C", 32, REEDER),
}
#: what is not offered, and why
SNMP_REFUSED = {
    "md5": "HMAC-MD5-96 is not offered (MD5 is broken): use sha512, or sha if the receiver "
           "has nothing newer",
    "des": "DES is not offered (a 56-bit key): use aes256, or aes128 if the receiver has "
           "nothing newer",
    "3des": "3DES is not offered: use aes256, or aes128 if the receiver has nothing newer",
    "none": "traps are sent authPriv only",
}


def _protocol(value: object, table: dict) -> object:
    """A known name unchanged; a refused one, or one in net-snmp's spelling, a ValueError
    that says what to write (anything else: the Literal's own error lists the names)."""
    if not isinstance(value, str) or value in table:
        return value
    plain = value.lower().replace("-", "").replace("_", "")
    plain = {"aes": "aes128", "sha1": "sha"}.get(plain, plain)
    if plain in SNMP_REFUSED:
        raise ValueError(f"{value!r}: {SNMP_REFUSED[plain]}")
    if plain in table:
        raise ValueError(f"write {plain!r} ({value!r} is net-snmp's spelling)")
    return value


class SnmpTrapTarget(BaseModel):
    """SNMPv3 traps (authPriv only) for trips, critical alarms and the healthy contact.

    ``auth_protocol`` is one of ``sha`` (HMAC-SHA-96, the default), ``sha224``, ``sha256``,
    ``sha384``, ``sha512`` (RFC 7860: net-snmp's ``SHA-224`` ... ``SHA-512``);
    ``priv_protocol`` one of ``aes128`` (RFC 3826, the default; net-snmp's ``AES``),
    ``aes192``, ``aes256`` (net-snmp's ``AES-192``, ``AES-256``: a short key extended by
    Blumenthal's draft) or ``aes192c``, ``aes256c`` (net-snmp's ``AES-192-C``, ``AES-256-C``:
    by Reeder's, as Cisco does). The extension matters only when the authentication hash is
    shorter than the AES key (``sha`` with aes192/aes256, ``sha224`` with aes256): there the
    receiver must use the same one, or it reads nothing. The defaults stay those of the
    receivers configured before the choice existed (traps are not acknowledged: a receiver
    that no longer understands them would fail silently); ``sha512`` with ``aes256`` is the
    strongest, proven against net-snmp 5.9's snmptrapd.
    """

    model_config = STRICT
    host: Host
    port: int = Field(162, ge=1, le=65535)
    user: str = Field(min_length=1, max_length=32)
    auth_protocol: Literal["sha", "sha224", "sha256", "sha384", "sha512"] = Field(
        "sha", description="HMAC-SHA-96 (sha) or RFC 7860's SHA-2 (sha224 ... sha512)")
    priv_protocol: Literal["aes128", "aes192", "aes256", "aes192c", "aes256c"] = Field(
        "aes128", description="AES-128 CFB, or AES-192/256 CFB with Blumenthal's key "
        "extension (net-snmp's AES-192, AES-256) or Reeder's (-c: AES-192-C, AES-256-C)")
    auth_key: str | None = Field(None, min_length=8, description="authentication pass phrase "
                                 "(8 characters at least); see auth_key_env")
    auth_key_env: EnvName | None = None
    priv_key: str | None = Field(None, min_length=8, description="privacy (AES) pass phrase; "
                                 "see priv_key_env")
    priv_key_env: EnvName | None = None
    engine_id: str | None = Field(None, pattern=r"^(0x)?([0-9A-Fa-f]{2}){5,32}$",
                                  description="this relay's SNMP engine ID in hex, which the "
                                  "receiver's user entry names; default from the relay name "
                                  "(softrelay check prints it)")
    enterprise: str = Field("1.3.6.1.4.1.8072.9999.9999.49", pattern=r"^1(\.\d+)+$",
                            description="OID under which the traps are defined; the default "
                            "lies in Net-SNMP's experimental 'playpen': set your own")
    flags: tuple[str, ...] = Field(("trip", "critical"), description="flags whose pickup and "
                                   "dropout send a trap")
    healthy: bool = Field(True, description="a trap when the healthy contact drops or returns")

    @field_validator("auth_protocol", mode="before")
    @classmethod
    def _auth_protocol(cls, value: object) -> object:
        return _protocol(value, SNMP_AUTH)

    @field_validator("priv_protocol", mode="before")
    @classmethod
    def _priv_protocol(cls, value: object) -> object:
        return _protocol(value, SNMP_PRIV)

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """The protocols only when they are not the defaults: a file written before they could
        be chosen keeps its configuration hash (the DCS's config_hash, the settings changed in
        service kept under it)."""
        data = handler(self)
        for key in ("auth_protocol", "priv_protocol"):
            if getattr(self, key) == type(self).model_fields[key].default:
                data.pop(key, None)
        return data

    @model_validator(mode="after")
    def _keys(self) -> SnmpTrapTarget:
        for name in ("auth_key", "priv_key"):
            if getattr(self, name) is None and getattr(self, f"{name}_env") is None:
                raise ValueError(f"give {name} or {name}_env: traps are sent authPriv only")
        return self

    def engine_id_for(self, relay_name: str) -> str:
        """This relay's engine ID (hex): the configured one, else RFC 3411's text format
        under Net-SNMP's enterprise number (0x80001f88, format 04) with the relay's name."""
        if self.engine_id is not None:
            return self.engine_id.removeprefix("0x").lower()
        return "80001f8804" + relay_name.encode()[:27].hex()

    def keys(self) -> tuple[str, str]:
        """(authentication, privacy) pass phrases; an environment variable's must be 8
        characters at least too."""
        found = []
        for name in ("auth_key", "priv_key"):
            value = secret(getattr(self, name), getattr(self, f"{name}_env"))
            if value is None or len(value) < 8:
                raise ValueError(f"snmp.{name}: ${getattr(self, f'{name}_env')} is unset or "
                                 "shorter than 8 characters")
            found.append(value)
        return found[0], found[1]

    @property
    def auth(self) -> SnmpAuth:
        return SNMP_AUTH[self.auth_protocol]

    @property
    def priv(self) -> SnmpPriv:
        return SNMP_PRIV[self.priv_protocol]

    @property
    def key_extended(self) -> bool:
        """Whether the privacy key is longer than the authentication hash, so that the key
        extension (Blumenthal's or Reeder's) is used and the receiver must use the same."""
        return self.priv.key_bytes > self.auth.hash_bytes

    def protocols(self) -> str:
        """The protocols in net-snmp's names, with what the receiver must match, e.g.
        ``SHA-512 + AES-256 (no key extension: AES-256 and AES-256-C alike)``."""
        a, p = self.auth, self.priv
        text = f"{a.net_snmp} + {p.net_snmp}"
        if p.extension is None:
            return text
        if self.key_extended:
            return f"{text} (key extended by {p.extension}: the receiver must say " \
                   f"{p.net_snmp})"
        base = p.net_snmp.removesuffix("-C")
        return f"{text} (no key extension: {base} and {base}-C alike)"

    def receiver_line(self, relay_name: str) -> str:
        """The snmptrapd.conf line that receives these traps (the pass phrases left out)."""
        return (f'createUser -e 0x{self.engine_id_for(relay_name)} {self.user} '
                f'{self.auth.net_snmp} "<auth_key>" {self.priv.net_snmp} "<priv_key>"')
