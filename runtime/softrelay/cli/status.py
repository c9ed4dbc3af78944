"""``softrelay status [HOST:PORT]``: a running relay read through its Modbus map (the
configuration's names and figures; without a configuration, what the relay says of itself);
``--watch S`` refreshes until Ctrl-C."""

from __future__ import annotations

import sys
import time

from softrelay.cli.load import load_or_report
from softrelay.service.install import CONFIG as INSTALLED_CONFIG


def command(args) -> int:
    """``softrelay status``: the relay read through its configuration's map, or (without
    one, or when the relay's layout is not the file's) what the relay says of itself."""
    from softrelay.modbus.regmap import RegisterMap
    from softrelay.modbus.status_client import (
        ExceptionResponseError,
        UnreachableError,
        discover,
        read,
        render,
        render_discovered,
    )

    path = args.config
    if path is None and INSTALLED_CONFIG.exists():
        path = str(INSTALLED_CONFIG)
    config = regmap = None
    if path is not None or not args.address:  # no address: the demo's, with its map
        config = load_or_report(path)
        if config is None:
            return 1
        groups = config.modbus.groups if config.modbus else {}
        regmap = RegisterMap(config, list(groups[args.unit]) if args.unit in groups else None)
    default_port = config.modbus.port if config is not None and config.modbus else 5020
    if default_port is None and not (args.address and ":" in args.address):
        print("status: the configuration serves Modbus over TLS only (modbus.port: null), "
              "which status does not speak: give HOST:PORT of a plain port", file=sys.stderr)
        return 1
    if args.address:
        host, colon, port = args.address.rpartition(":")
        if not colon:  # HOST alone: the configuration's port, else the default 5020
            host, port = args.address, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            print(f"status: {args.address!r} is not HOST:PORT", file=sys.stderr)
            return 1
    elif config.modbus is not None:
        host, port = config.modbus.host, str(config.modbus.port)
        host = "127.0.0.1" if host == "0.0.0.0" else host
    else:
        print("status: the configuration has no modbus section: give HOST:PORT",
              file=sys.stderr)
        return 1
    where = f"{host}:{port}"

    def text() -> str:
        if regmap is None:
            return render_discovered(discover(host, int(port), args.unit), where)
        try:
            return render(read(host, int(port), regmap, args.unit), regmap, where)
        except ExceptionResponseError:  # the file's layout is not the relay's: what it says itself
            found = discover(host, int(port), args.unit)
            return render_discovered(found, where, note=(
                f"configuration 0x{int(found.relay['config_hash']):08x} is NOT {path}'s "
                f"0x{regmap.config_hash:08x}, whose layout does not fit it: the relay's own "
                "summary, points by number"))

    try:
        while True:
            try:
                shown = text()
            except UnreachableError as exc:
                print(f"status: {exc}", file=sys.stderr)
                if args.watch is None:
                    return 1
                shown = f"status: {exc}\n"  # watching: the relay may come back
            if args.watch is None:
                sys.stdout.write(shown)
                return 0
            sys.stdout.write("\x1b[H\x1b[J" + shown if sys.stdout.isatty() else shown + "\n")
            sys.stdout.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:  # Ctrl-C ends a watch, wherever it finds it
        return 0
