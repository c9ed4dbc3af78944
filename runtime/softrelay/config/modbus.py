"""The relay as a Modbus slave: the TCP slave (and its TLS front), the RTU slave, and the access
levels that guard every write.

Describes and validates; the TLS files are loaded by ``config.modbus_tls``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from softrelay.config.base import STRICT, Level, Name

#: the role extension of Modbus/TCP Security (MB-TCP-Security, R-21/R-22): an ASN.1 UTF8String
MODBUS_ROLE_OID = "1.3.6.1.4.1.50316.802.1"
#: a certificate's role, as ``modbus.tls.roles`` names it
Role = Annotated[str, Field(min_length=1, max_length=64)]


class ModbusTls(BaseModel):
    """Modbus/TCP Security (the Modbus Organization's TLS profile, "mbaps"): the same map over
    TLS with mutual certificates, on a port of its own beside the plain one. A client without
    a certificate signed by ``ca`` fails the handshake; the role in its certificate (extension
    1.3.6.1.4.1.50316.802.1, a UTF8String) gives its session the level ``roles`` maps it to,
    for the life of the connection. A certificate without a role, or with one not in
    ``roles``, reads only (and an event says so). ``check`` loads the files as ``run`` does:
    relative paths are the working directory's, as MQTT's are; give absolute ones."""

    model_config = STRICT
    port: int = Field(802, ge=0, le=65535, description="802 (IANA's mbaps) needs root or "
                      "CAP_NET_BIND_SERVICE; 0: any free port (tests)")
    cert: Path = Field(description="this relay's certificate (PEM), with its chain")
    key: Path = Field(description="this relay's private key (PEM), readable by the service only")
    ca: Path = Field(description="CA certificate(s) (PEM) a client's certificate must chain to")
    min_version: Literal["1.2", "1.3"] = Field("1.2", description="the oldest TLS version "
                                               "accepted (1.3 is negotiated when the client "
                                               "offers it); 1.3: a 1.2-only client is refused")
    roles: dict[Role, Level] = Field(default_factory=dict, description="certificate role -> "
                                     "access level (0 read, 1 operator, 2 engineer); exact, "
                                     "case-sensitive; a role not listed reads only")
    crl: Path | None = Field(None, description="certificate revocation list(s) (PEM) of "
                             "every CA in ca: a revoked client certificate is refused, and "
                             "one whose CA has no CRL here, or whose CRL is out of date; "
                             "read at each start of the TLS front; none: no revocation check")
    handshake_timeout: float = Field(5.0, gt=0.0, le=300.0, description="s a client may take "
                                     "over its handshake before it is dropped (a handshake "
                                     "in progress holds a place: modbus.max_per_peer per "
                                     "address)")


class ModbusSlave(BaseModel):
    """The Modbus/TCP slave the DCS polls (``softrelay regmap`` prints its map)."""

    model_config = STRICT
    host: str = Field("127.0.0.1", description="bind address (IPv4); 0.0.0.0: every interface")
    port: int | None = Field(5020, ge=0, le=65535, description="502 needs root or the "
                             "CAP_NET_BIND_SERVICE capability; 0: any free port (tests); "
                             "null: no plain port (TLS only: give tls)")
    tls: ModbusTls | None = Field(None, description="Modbus/TCP Security on a port of its "
                                  "own (802); none: plain Modbus/TCP only")
    units: tuple[int, ...] = Field((), description="unit ids that see the whole map; empty: "
                                   "any (unless groups are given). Others get exception 0x0B "
                                   "(gateway target failed to respond)")
    groups: dict[int, tuple[Name, ...]] = Field(
        default_factory=dict, description="unit id -> points it shows, laid out from the first "
        "block as if each group were a relay of its own (the same template for every motor)")
    max_connections: int = Field(16, ge=1, le=256)
    idle_timeout: float = Field(60.0, gt=0.0, le=86400.0, description="s without a request "
                                "before a connection is closed")
    frame_timeout: float = Field(2.0, gt=0.0, le=60.0, description="s a frame may stay "
                                 "half-received before the connection is dropped")
    allow: tuple[str, ...] = Field((), description="IPv4 networks allowed to connect "
                                   "('10.1.0.0/16'); empty: any")
    max_per_peer: int | None = Field(None, ge=1, le=256, description="connections one IPv4 "
                                     "address may hold (a newcomer beyond closes that "
                                     "address's longest idle); none: half of max_connections "
                                     "(at least 1); above max_connections: max_connections")

    @model_validator(mode="after")
    def _networks(self) -> ModbusSlave:
        import ipaddress

        try:
            ipaddress.IPv4Address(self.host)
        except ValueError:
            raise ValueError(f"host {self.host!r} is not an IPv4 address") from None
        for network in self.allow:
            try:
                ipaddress.IPv4Network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"allow: {network!r} is not an IPv4 network ({exc})") from None
        if any(not 0 <= u <= 255 for u in (*self.units, *self.groups)):
            raise ValueError("unit ids are 0..255")
        both = set(self.units) & set(self.groups)
        if both:
            raise ValueError(f"unit {min(both)} is in 'units' and in 'groups'")
        for unit, names in self.groups.items():
            if not names:
                raise ValueError(f"groups: unit {unit} shows no point")
        if self.port is None and self.tls is None:
            raise ValueError("port is null and no tls is given: the slave would serve "
                             "nobody (give a port, or tls, or leave modbus out)")
        return self


#: the largest code: one is written as a uint32 to relay.unlock
MAX_CODE = 0xFFFFFFFF
#: the replacement of the section before access levels (printed when a file still has it)
UNLOCK_MIGRATION = (
    "replaced by 'access:' (access levels, lockout): settings, preset theta and "
    "clear_statistics now need the engineer's code, reset and acknowledge the operator's. "
    "Write instead 'access: {engineer: {<the unlock section's code or code_env>}, minutes: "
    "<its minutes>, operator: {code_env: ...}}'; a plant that resets from the DCS without a "
    "code says so: 'access: {levels: {reset: 0, acknowledge: 0}}'")


def code_from_text(text: str, where: str) -> int:
    """A code from an environment variable's text: a whole number 1..4294967295 (decimal,
    or 0x hex). The error names ``where``, never the text."""
    try:
        value = int(text.strip(), 0)
    except ValueError:
        raise ValueError(f"{where} is not a code: give a whole number 1..{MAX_CODE}") from None
    if not 1 <= value <= MAX_CODE:
        raise ValueError(f"{where}: a code is 1..{MAX_CODE}")
    return value


class AccessCode(BaseModel):
    """One access level's code: in the file (``code``) or in an environment variable
    (``code_env``, which wins when set; ``code`` is then the fallback). A variable that is not
    set with no ``code`` to fall back on, or that holds no code, is an error (``check`` and
    ``run`` refuse it): the level would otherwise be silently unreachable."""

    model_config = STRICT
    code: int | None = Field(None, ge=1, le=MAX_CODE, description="the code, in the file; "
                             "see code_env to keep it out")
    code_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                 description="environment variable holding the code; wins "
                                 "over code when set")

    @field_validator("code_env")
    @classmethod
    def _env_holds_a_code(cls, name: str | None, info) -> str | None:
        if name is None:
            return None
        text = os.environ.get(name, "")
        if text.strip():
            code_from_text(text, f"${name}")
        elif info.data.get("code") is None:
            raise ValueError(f"${name} is not set (and no code to fall back on): set it in "
                             "the service's environment file, or give code")
        return name

    @model_validator(mode="after")
    def _some_code(self) -> AccessCode:
        if self.code is None and self.code_env is None:
            raise ValueError("give code or code_env (or leave the level out: nobody reaches "
                             "it over Modbus)")
        return self

    def resolve(self) -> int:
        """The code in force: the variable's when set, else the file's. Never logged."""
        if self.code_env:
            text = os.environ.get(self.code_env, "")
            if text.strip():
                return code_from_text(text, f"${self.code_env}")
        if self.code is None:
            raise ValueError(f"${self.code_env} is not set (and no code to fall back on)")
        return self.code

    def origin(self) -> str:
        """Where the code comes from, for ``check`` (never the code)."""
        if self.code_env and os.environ.get(self.code_env, "").strip():
            return f"code from ${self.code_env}"
        if self.code_env:
            return f"code in the file (${self.code_env} is not set)"
        return "code in the file"


class CommandLevels(BaseModel):
    """The level each write needs over Modbus (0 read, 1 operator, 2 engineer). 0 lets any
    admitted client do it without a code: say so only on purpose."""

    model_config = STRICT
    reset: Level = 1
    acknowledge: Level = 1
    preset: Level = 2
    clear_statistics: Level = 2
    settings: int = Field(2, ge=1, le=2, description="settings always need a code")


class Lockout(BaseModel):
    """Wrong codes from one peer (an address, or the RTU line) before its codes are refused,
    and for how long: the first lockout, doubled at each next one, up to the longest."""

    model_config = STRICT
    attempts: int = Field(5, ge=1, le=100, description="wrong codes in a row")
    first_minutes: float = Field(1.0, gt=0.0, le=1440.0)
    max_minutes: float = Field(60.0, gt=0.0, le=10080.0)

    @model_validator(mode="after")
    def _order(self) -> Lockout:
        if self.max_minutes < self.first_minutes:
            raise ValueError(f"max_minutes ({self.max_minutes:g}) is shorter than "
                             f"first_minutes ({self.first_minutes:g})")
        return self


class LocalRemote(BaseModel):
    """A front-panel local/remote switch on a GPIO input: its contact closed (the input
    active) is *local*: every write over Modbus is refused (the event cursor excepted)."""

    model_config = STRICT
    pin: int | str
    pull_up: bool = Field(True, description="true: the contact pulls the pin to ground")


class Access(BaseModel):
    """Access levels over Modbus (TCP and RTU), as a relay's: each level's code, how long a
    session keeps it, what each write needs, the lockout, an optional local/remote switch.
    Without the section no level has a code: Modbus reads, and does only what ``levels``
    gives level 0."""

    model_config = STRICT
    operator: AccessCode | None = Field(None, description="level 1: reset, acknowledge")
    engineer: AccessCode | None = Field(None, description="level 2: settings, preset theta, "
                                        "clear statistics (and all of level 1)")
    minutes: float = Field(10.0, gt=0.0, le=1440.0, description="a session keeps its level "
                           "this long after its code (and never past its connection)")
    levels: CommandLevels = CommandLevels()
    lockout: Lockout = Lockout()
    local_remote: LocalRemote | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Access:
        if self.operator is not None and self.engineer is not None:
            try:
                same = self.operator.resolve() == self.engineer.resolve()
            except ValueError:
                return self  # reported at the code itself
            if same:
                raise ValueError("the operator's and the engineer's codes are the same: "
                                 "give each level its own")
        return self

    def codes(self) -> dict[int, int | None]:
        """level -> the code in force (None: that level has no code)."""
        return {1: self.operator.resolve() if self.operator else None,
                2: self.engineer.resolve() if self.engineer else None}


class ModbusRtuSlave(BaseModel):
    """The same register map on an RS-485 line, as an RTU slave."""

    model_config = STRICT
    port: str = Field(min_length=1, description="serial device, e.g. /dev/ttyUSB0")
    unit: int = Field(1, ge=1, le=247, description="this relay's address on the line")
    baudrate: int = Field(19200, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
