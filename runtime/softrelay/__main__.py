"""Command line: ``python -m softrelay`` (or ``softrelay``).

``check CONFIG`` validates a configuration and prints what would run; ``demo`` is the
accelerated demonstration of the protection core.
"""

from __future__ import annotations

import argparse
import sys

from softrelay import __version__, demo
from softrelay.config import ConfigError, load
from softrelay.config.summary import describe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softrelay", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"softrelay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="accelerated demonstration of the core")
    run_demo.add_argument("--seconds", type=int, default=1800, help="simulated seconds")
    run_demo.add_argument("--every", type=int, default=60, help="print period, s")
    check = commands.add_parser("check", help="validate a configuration, say what would run")
    check.add_argument("config", nargs="?", help="YAML file (default: the embedded demo)")
    args = parser.parse_args(argv)
    if args.command == "check":
        try:
            config = load(args.config)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"{len(exc.problems)} problem(s): nothing would run", file=sys.stderr)
            return 1
        print("\n".join(describe(config)))
        return 0
    if args.command == "demo":
        return demo.main(args.seconds, args.every)
    return 2  # pragma: no cover (argparse refuses unknown commands)


if __name__ == "__main__":
    raise SystemExit(main())
