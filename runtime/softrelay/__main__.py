"""Command line: ``python -m softrelay`` (or ``softrelay``).

Commands today: ``demo``, the accelerated demonstration of the protection core. The runtime's
``run``, ``check`` and ``regmap`` arrive with issues 3 and 5.
"""

from __future__ import annotations

import argparse

from softrelay import __version__, demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softrelay", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"softrelay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="accelerated demonstration of the core")
    run_demo.add_argument("--seconds", type=int, default=1800, help="simulated seconds")
    run_demo.add_argument("--every", type=int, default=60, help="print period, s")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo.main(args.seconds, args.every)
    return 2  # pragma: no cover (argparse refuses unknown commands)


if __name__ == "__main__":
    raise SystemExit(main())
