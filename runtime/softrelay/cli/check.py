"""``softrelay check [CONFIG]``: validate a configuration and say what would run; it refuses
whatever ``run`` would refuse (the configuration, the pin factory)."""

from __future__ import annotations

import sys

from softrelay.cli.load import load_or_report
from softrelay.cli.summary import describe


def command(args) -> int:
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
