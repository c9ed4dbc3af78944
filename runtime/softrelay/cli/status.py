"""``softrelay status [HOST:PORT]``: a running relay read through its Modbus map (the
configuration's names and figures; without a configuration, what the relay says of itself);
``--watch S`` refreshes until Ctrl-C."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from softrelay.cli.load import load_or_report
from softrelay.service.install import CONFIG as INSTALLED_CONFIG


class _NoAddressError(Exception):
    """What ``status`` cannot do with the arguments it was given (printed, exit 1)."""


def command(args) -> int:
    """``softrelay status``: the relay read through its configuration's map, or (without
    one, or when the relay's layout is not the file's) what the relay says of itself."""
    path = args.config
    if path is None and INSTALLED_CONFIG.exists():
        path = str(INSTALLED_CONFIG)
    config = regmap = None
    if path is not None or not args.address:  # no address: the demo's, with its map
        config = load_or_report(path)
        if config is None:
            return 1
        regmap = _register_map(config, args.unit)
    try:
        host, port = _where(args.address, config)
    except _NoAddressError as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 1
    return _show(lambda: _text(host, port, regmap, path, args.unit), args.watch)


def _register_map(config, unit: int):
    """The configuration's map, as the unit id ``unit`` serves it (its group, if any)."""
    from softrelay.modbus.regmap import RegisterMap

    groups = config.modbus.groups if config.modbus else {}
    return RegisterMap(config, list(groups[unit]) if unit in groups else None)


def _where(address: str | None, config) -> tuple[str, str]:
    """The host and port to ask: ``address`` (HOST:PORT, or HOST with the configuration's
    port, else 5020), else the configuration's own; ``_NoAddressError`` saying why there is none."""
    default_port = config.modbus.port if config is not None and config.modbus else 5020
    if default_port is None and not (address and ":" in address):
        raise _NoAddressError("the configuration serves Modbus over TLS only (modbus.port: null), "
                       "which status does not speak: give HOST:PORT of a plain port")
    if address:
        host, colon, port = address.rpartition(":")
        if not colon:  # HOST alone: the configuration's port, else the default 5020
            host, port = address, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _NoAddressError(f"{address!r} is not HOST:PORT")
        return host, port
    if config is None or config.modbus is None:
        raise _NoAddressError("the configuration has no modbus section: give HOST:PORT")
    host = config.modbus.host
    return ("127.0.0.1" if host == "0.0.0.0" else host), str(config.modbus.port)


def _text(host: str, port: str, regmap, path: str | None, unit: int) -> str:
    """The relay at host:port read through ``regmap`` (None: what it says of itself, as it
    is when the file's layout does not fit the relay's)."""
    from softrelay.modbus.status_client import (
        ExceptionResponseError,
        discover,
        read,
        render,
        render_discovered,
    )

    where = f"{host}:{port}"
    if regmap is None:
        return render_discovered(discover(host, int(port), unit), where)
    try:
        return render(read(host, int(port), regmap, unit), regmap, where)
    except ExceptionResponseError:  # the file's layout is not the relay's: what it says itself
        found = discover(host, int(port), unit)
        return render_discovered(found, where, note=(
            f"configuration 0x{int(found.relay['config_hash']):08x} is NOT {path}'s "
            f"0x{regmap.config_hash:08x}, whose layout does not fit it: the relay's own "
            "summary, points by number"))


def _show(text: Callable[[], str], watch: float | None) -> int:
    """Print ``text()`` once (exit 1 when the relay cannot be reached), or every ``watch`` s
    until Ctrl-C (an unreachable relay shown as such: it may come back)."""
    from softrelay.modbus.status_client import UnreachableError

    try:
        while True:
            try:
                shown = text()
            except UnreachableError as exc:
                print(f"status: {exc}", file=sys.stderr)
                if watch is None:
                    return 1
                shown = f"status: {exc}\n"  # watching: the relay may come back
            if watch is None:
                sys.stdout.write(shown)
                return 0
            sys.stdout.write("\x1b[H\x1b[J" + shown if sys.stdout.isatty() else shown + "\n")
            sys.stdout.flush()
            time.sleep(watch)
    except KeyboardInterrupt:  # Ctrl-C ends a watch, wherever it finds it
        return 0
