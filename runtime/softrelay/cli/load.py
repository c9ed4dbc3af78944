"""The configuration as every command loads it: through ``load_or_report``, so what ``check``
refuses, ``run`` (and every other command) refuses at load, before anything starts."""

from __future__ import annotations

import sys

from softrelay.config import ConfigError, load


def load_or_report(path: str | None, outcome: str = ""):
    """The configuration, or None after printing every problem (and ``outcome``) to stderr,
    one line each. An error of the checking itself is one line too (naming the file), never a
    traceback."""
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
