"""``softrelay regmap [CONFIG] --format json|csv|md [--unit N]``: the Modbus register map the
DCS polls (a unit of ``modbus.groups``: the map that unit shows)."""

from __future__ import annotations

import sys

from softrelay.cli.load import load_or_report


def command(args) -> int:
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
