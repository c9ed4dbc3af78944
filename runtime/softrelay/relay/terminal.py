"""The live terminal view of ``softrelay run`` on a terminal, as the relay hands it to the
process that draws it (the companion: drawing is Python work that must not hold the scan's
interpreter lock).

``terminal_view`` is given to the companion by reference (it pickles as its name) and called
there, after the helper's preamble: the companion draws what it is handed and never imports
the screen itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from softrelay.config.relay import RelayConfig
from softrelay.screen import TerminalStatus, render

Draw = Callable[[RelayConfig, dict[str, np.ndarray]], None]


def terminal_view() -> Draw | None:
    """A drawer of the output snapshot on this process's stdout, None when it is no terminal
    (under systemd, piped: the log lines are the output)."""
    if not sys.stdout.isatty():
        return None
    view = TerminalStatus(sys.stdout)
    return lambda config, tables: view.draw(render(config, tables))
