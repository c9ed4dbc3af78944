"""``softrelay run [CONFIG]``: the relay, until SIGTERM or Ctrl-C (default: the embedded demo).

Whatever it cannot take (its ports, pins, a helper process, another instance holding the
relay's name) is one line on stderr and exit code 1, never a traceback."""

from __future__ import annotations

import signal
import sys
import threading

from softrelay.cli.load import load_or_report
from softrelay.logs import configure_logging


def command(args) -> int:
    return run_relay(args.config)


def run_relay(path: str | None) -> int:
    from softrelay.image.shared import RelayRunningError
    from softrelay.relay.build import build_relay  # gpiozero: only when running
    from softrelay.relay.errors import StartupError

    terminal = sys.stdout.isatty()
    configure_logging(terminal)
    config = load_or_report(path)
    if config is None:
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:  # the relay's own ports and pins: one it cannot take ends here, in one line
        relay = build_relay(config, path, status=terminal)
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
