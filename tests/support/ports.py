"""Free TCP ports on 127.0.0.1, for the configurations that must name one before the relay
starts (a server the test starts itself binds port 0 instead)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (bound and released): another process may
    take it before the caller binds it, so use it only where port 0 cannot be given."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
