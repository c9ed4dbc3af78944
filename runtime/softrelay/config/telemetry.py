"""The configuration of what watches the relay from outside: Prometheus metrics, MQTT, SNMP traps.

Each section is off when absent. They are served by the telemetry process
(``softrelay.telemetry``), never by the scan's. Secrets (the MQTT password, the SNMP keys) can
be given in the file or, better, named by an environment variable (``*_env``, e.g. from the
service's EnvironmentFile) that wins when set.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

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


class SnmpTrapTarget(BaseModel):
    """SNMPv3 traps (authPriv: HMAC-SHA authentication, AES-128 privacy) for trips, critical
    alarms and the healthy contact."""

    model_config = STRICT
    host: Host
    port: int = Field(162, ge=1, le=65535)
    user: str = Field(min_length=1, max_length=32)
    auth_key: str | None = Field(None, min_length=8, description="SHA pass phrase (8 characters "
                                 "at least); see auth_key_env")
    auth_key_env: EnvName | None = None
    priv_key: str | None = Field(None, min_length=8, description="AES pass phrase; see "
                                 "priv_key_env")
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
