"""The Modbus/TCP Security files a configuration names (``modbus.tls``), loaded as the TLS
front loads them: ``server_context`` builds the server's TLS context (the front serves with
it), ``tls_problems`` says, as (key path, reason), what ``run`` would refuse (``check`` and
``load`` refuse it first).

Reads the certificate, key, CA and CRL files; opens no socket.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from softrelay.config.modbus import ModbusTls

if TYPE_CHECKING:
    from softrelay.config.relay import RelayConfig

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsSetupError(ValueError):
    """A TLS file that cannot serve: ``key`` is the setting (cert, key, ca), the text says
    why."""

    def __init__(self, key: str, text: str) -> None:
        self.key = key
        super().__init__(text)


def _no_passphrase() -> bytes:
    return b""  # an encrypted key fails to decrypt: said as such below


def server_context(tls: ModbusTls) -> ssl.SSLContext:
    """The server's TLS: ``min_version`` and up (1.3 when the client offers it), a client
    certificate required and checked against ``ca``, no compression, no renegotiation.
    ``TlsSetupError`` naming the file that cannot serve and why."""
    for key in ("cert", "key", "ca", "crl"):
        path: Path | None = getattr(tls, key, None)
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            raise TlsSetupError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.verify_mode = ssl.CERT_REQUIRED
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.num_tickets = 0  # no TLS 1.3 resumption: every connection shows its certificate
    try:
        context.load_verify_locations(cafile=str(tls.ca))
    except (ssl.SSLError, ValueError) as exc:
        raise TlsSetupError("ca", f"{tls.ca} holds no CA certificate in PEM "
                                  f"({ssl_reason(exc)})") from None
    if tls.crl is not None:
        if b"-----BEGIN X509 CRL-----" not in tls.crl.read_bytes():
            raise TlsSetupError("crl", f"{tls.crl} holds no CRL in PEM (-----BEGIN X509 "
                                       "CRL-----)")
        try:
            context.load_verify_locations(cafile=str(tls.crl))
        except (ssl.SSLError, ValueError) as exc:
            raise TlsSetupError("crl", f"{tls.crl} holds no CRL in PEM "
                                       f"({ssl_reason(exc)})") from None
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key), password=_no_passphrase)
    except ssl.SSLError as exc:
        reason = ssl_reason(exc)
        if not _loads_as_certificate(tls.cert):
            raise TlsSetupError("cert", f"{tls.cert} holds no certificate in PEM "
                                        f"({reason})") from None
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TlsSetupError("key", f"{tls.key} is not the private key of {tls.cert}: "
                                       "give the key the certificate was issued for") from None
        if "BAD_DECRYPT" in str(exc) or "bad decrypt" in str(exc):
            raise TlsSetupError("key", f"{tls.key} is encrypted: the relay starts unattended, "
                                       "give it an unencrypted key readable by the service "
                                       "only (chmod 0600)") from None
        raise TlsSetupError("key", f"{tls.key} holds no private key in PEM ({reason})") from None
    return context


def ssl_reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or str(exc)


def _loads_as_certificate(path: Path) -> bool:
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(path.read_bytes())
    except (ValueError, OSError):
        return False
    return True


def tls_problems(config: RelayConfig) -> list[tuple[tuple, str]]:
    """What ``run`` would refuse in ``modbus.tls``, as (key path, reason): its port the plain
    one's, a file it cannot read, a certificate, key or CA that does not load, a key that is
    not the certificate's, a key readable by its group or others (mode & 0o077). Reads the
    files; opens no socket."""
    m = config.modbus
    if m is None or m.tls is None:
        return []
    errors: list[tuple[tuple, str]] = []
    if m.port and m.tls.port == m.port:
        errors.append((("modbus", "tls", "port"), f"{m.tls.port} is modbus.port too: give TLS "
                       "a port of its own (802, Modbus/TCP Security's)"))
    try:
        server_context(m.tls)
    except TlsSetupError as exc:
        errors.append((("modbus", "tls", exc.key), str(exc)))
    else:
        mode = m.tls.key.stat().st_mode & 0o777
        if mode & 0o077:
            errors.append((("modbus", "tls", "key"), f"{m.tls.key} is open to its group or "
                           f"others (mode {mode:04o}): chmod 0600 it, readable by the "
                           "service only"))
    return errors
