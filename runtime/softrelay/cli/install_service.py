"""``softrelay install-service``: the systemd unit, its user and configuration directory
(``softrelay.service.install``); ``--print`` shows the unit and does nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def command(args) -> int:
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
