"""Command line: ``python -m softrelay`` (or ``softrelay``).

``run [CONFIG]`` runs the relay (default: the embedded demo configuration); ``check CONFIG``
validates a configuration and prints what would run; ``regmap CONFIG --format json|csv|md``
prints the Modbus register map the DCS polls; ``install-service`` installs the systemd unit
(softrelay.service.install); ``status [HOST:PORT]`` reads a running relay through its Modbus
map; ``demo`` is the accelerated demonstration of the protection core
alone.
"""

from __future__ import annotations

import os

# Before NumPy loads OpenBLAS: its worker threads spin after every BLAS call and would compete
# with the scan for a 2-core machine's CPUs. The companion process inherits this.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from softrelay import __version__
from softrelay.cli import demo
from softrelay.cli.summary import describe
from softrelay.config import ConfigError, load
from softrelay.logs import configure_logging
from softrelay.service.install import CONFIG as INSTALLED_CONFIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softrelay", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"softrelay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="accelerated demonstration of the core")
    run_demo.add_argument("--seconds", type=int, default=1800, help="simulated seconds")
    run_demo.add_argument("--every", type=int, default=60, help="print period, s")
    run = commands.add_parser("run", help="run the relay (default: the demo configuration)")
    run.add_argument("config", nargs="?", help="YAML file (default: the embedded demo)")
    check = commands.add_parser("check", help="validate a configuration, say what would run")
    check.add_argument("config", nargs="?", help="YAML file (default: the embedded demo)")
    regmap = commands.add_parser("regmap", help="print the Modbus register map")
    regmap.add_argument("config", nargs="?", help="YAML file (default: the embedded demo)")
    regmap.add_argument("--format", choices=("json", "csv", "md"), default="md")
    regmap.add_argument("--unit", type=int, help="the map a unit id of modbus.groups shows")
    status = commands.add_parser("status", help="read a running relay through its Modbus map")
    status.add_argument("address", nargs="?", help="HOST:PORT or HOST (default: the "
                        "configuration's modbus host and port)")
    status.add_argument("--config", help="the relay's configuration, for the names and full "
                        "figures (default: /etc/softrelay/relay.yaml when it exists; with "
                        "HOST:PORT and no configuration, what the relay says of itself)")
    status.add_argument("--unit", type=int, default=1, help="unit id (default 1)")
    status.add_argument("--watch", type=float, metavar="S", help="refresh every S seconds")
    bench = commands.add_parser("bench", help="measure what the configuration costs on this "
                                "machine; recommend the scan period and poll rates")
    bench.add_argument("config", nargs="?", help="YAML file (default: the embedded demo)")
    bench.add_argument("--seconds", type=float, default=5.0, help="length of each measuring "
                       "window at the least (default 5)")
    bench.add_argument("--scans", type=int, default=10_000, help="scans each of the relay's "
                       "windows lasts at the least (default 10000: enough for a p99.9; with "
                       "fewer, the tail quoted is the max)")
    bench.add_argument("--json", metavar="FILE", help="also write the report as JSON ('-': "
                       "standard output, instead of the text)")
    install = commands.add_parser("install-service", help="install the systemd unit, its "
                                  "user and configuration directory (root)")
    install.add_argument("--config", type=Path, default=INSTALLED_CONFIG,
                         help="the configuration the service runs (the demo is put there "
                         "when there is none)")
    install.add_argument("--user", default="softrelay", help="the service's system user")
    install.add_argument("--watchdog", default="5s", help="systemd's WatchdogSec")
    install.add_argument("--root", type=Path, help="write under this directory instead of / "
                         "(packaging); creates no user, reloads nothing")
    install.add_argument("--print", action="store_true", help="print the unit, do nothing")
    args = parser.parse_args(argv)
    if args.command == "status":
        return show_status(args)
    if args.command == "bench":
        return run_bench(args)
    if args.command == "install-service":
        from softrelay.service.install import Plan, apply, render

        plan = Plan(config=args.config, user=args.user, watchdog=args.watchdog,
                    root=args.root or Path("/"))
        if args.print:
            sys.stdout.write(render(plan))
            return 0
        try:
            apply(plan)
        except (PermissionError, OSError, subprocess.CalledProcessError) as exc:
            print(f"install-service: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "regmap":
        from softrelay.modbus.regmap import RegisterMap

        config = load_or_report(args.config)
        if config is None:
            return 1
        groups = config.modbus.groups if config.modbus else {}
        if args.unit is not None and args.unit not in groups:
            print(f"unit {args.unit} shows no group of points (modbus.groups: "
                  f"{', '.join(map(str, groups)) or 'none'})", file=sys.stderr)
            return 1
        regmap = RegisterMap(config, list(groups[args.unit]) if args.unit is not None
                             else None)
        text = {"json": regmap.to_json, "csv": regmap.to_csv, "md": regmap.to_markdown}[
            args.format]()
        sys.stdout.write(text)
        return 0
    if args.command == "check":
        config = load_or_report(args.config, "nothing would run")
        if config is None:
            return 1
        print("\n".join(describe(config)))
        from softrelay.gpio.coils import factory_problem

        problem = factory_problem(config.gpio.factory)
        if problem is not None:  # run would refuse: so does check
            print(f"{args.config or 'the demo'}: gpio.factory: {problem}", file=sys.stderr)
            return 1
        return 0
    if args.command == "demo":
        return demo.main(args.seconds, args.every)
    if args.command == "run":
        return run_relay(args.config)
    return 2  # pragma: no cover (argparse refuses unknown commands)


def show_status(args) -> int:
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


def load_or_report(path: str | None, outcome: str = ""):
    """The configuration, or None after printing every problem (and ``outcome``) to stderr,
    one line each. ``run``, ``check`` and the other commands load through here, so what
    ``check`` refuses, ``run`` refuses at load, before anything starts. An error of the
    checking itself is one line too (naming the file), never a traceback."""
    try:
        return load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if outcome:
            print(f"{len(exc.problems)} problem(s): {outcome}", file=sys.stderr)
        return None
    except Exception as exc:  # a bug of the checking: still one line, and no start
        print(f"{path or 'the embedded demo'}: the configuration could not be checked "
              f"({type(exc).__name__}: {exc}): please report it; nothing would run",
              file=sys.stderr)
        return None


def run_bench(args) -> int:
    from softrelay.cli.bench import bench, render

    configure_logging(terminal=True)  # warnings only: the report is the output
    config = load_or_report(args.config)
    if config is None:
        return 1
    report = bench(config, args.seconds,
                   progress=lambda text: print(f"bench: {text}", file=sys.stderr, flush=True),
                   scans=args.scans)
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render(report))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def run_relay(path: str | None) -> int:
    from softrelay.image.shared import RelayRunningError
    from softrelay.relay.relay import Relay, StartupError  # gpiozero: only when running

    terminal = sys.stdout.isatty()
    configure_logging(terminal)
    config = load_or_report(path)
    if config is None:
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:  # the relay's own ports and pins: one it cannot take ends here, in one line
        relay = Relay(config, path, status=terminal)
    except (RelayRunningError, StartupError) as exc:
        print(f"softrelay: {exc}", file=sys.stderr)
        return 1
    relay.apply_realtime()
    try:  # a failed start gives back what it took (helpers, ports, shared memory, lock)
        relay.start()
    except StartupError as exc:
        print(f"softrelay: {exc}", file=sys.stderr)
        return 1
    try:
        relay.run(lambda: not stop.is_set())
    finally:
        relay.stop()
    return 0

