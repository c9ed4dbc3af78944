"""What the relay says when it cannot start: one line the user reads."""

from __future__ import annotations

import errno


class StartupError(RuntimeError):
    """The relay cannot take one of its own resources: its Modbus slave's port, its RTU line,
    its metrics port, the pin factory it was told to use, a helper process. Fatal: the text is
    the one line the user reads (what and why); nothing the relay took is left behind."""


def port_error(what: str, key: str, host: str, port: int | None, exc: OSError) -> str:
    """One line on a port the relay cannot listen on (``key``: the setting that names it;
    ``port`` None: none configured, the failure was elsewhere: its reason alone)."""
    if port is None:
        return f"{what}: {exc}"
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} in use: {what} cannot listen on {host}:{port} (another relay or "
                f"program holds it: ss -ltnp 'sport = :{port}'; or set {key})")
    if isinstance(exc, PermissionError):
        return f"{what}: {exc}"
    return f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}"
