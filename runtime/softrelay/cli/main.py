"""Command line: ``python -m softrelay`` (or ``softrelay``).

``run [CONFIG]`` runs the relay (default: the embedded demo configuration); ``check CONFIG``
validates a configuration and prints what would run; ``regmap CONFIG --format json|csv|md``
prints the Modbus register map the DCS polls; ``install-service`` installs the systemd unit
(softrelay.service.install); ``status [HOST:PORT]`` reads a running relay through its Modbus
map; ``demo`` is the accelerated demonstration of the protection core
alone.

This module is the parser and the dispatch only: each command is its own module
(``COMMANDS``), imported when that command is asked for, so ``softrelay --help`` loads none
of them.
"""

from __future__ import annotations

import os

# Before NumPy loads OpenBLAS: its worker threads spin after every BLAS call and would compete
# with the scan for a 2-core machine's CPUs. The companion process inherits this.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import importlib
from pathlib import Path

from softrelay import __version__
from softrelay.service.install import CONFIG as INSTALLED_CONFIG

#: command -> "module:function(args) -> exit code", imported when the command is run
COMMANDS = {
    "demo": "softrelay.cli.demo:command",
    "run": "softrelay.cli.run:command",
    "check": "softrelay.cli.check:command",
    "regmap": "softrelay.cli.regmap:command",
    "status": "softrelay.cli.status:command",
    "bench": "softrelay.cli.bench:command",
    "install-service": "softrelay.cli.install_service:command",
}


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: every command, its arguments and its help."""
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, _, function = COMMANDS[args.command].partition(":")
    return getattr(importlib.import_module(module), function)(args)
