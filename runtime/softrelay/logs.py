"""The relay's log lines, the same in every one of its processes (scan, I/O, telemetry).

Under systemd (stderr is the journal's stream: ``JOURNAL_STREAM`` or ``INVOCATION_ID`` set)
each line carries its syslog priority as a ``<N>`` prefix and no timestamp of its own
(journald adds the time and the unit); elsewhere each line is timestamped. On a terminal the
live status is the view, so only warnings are printed over it. Each process calls
``configure_logging`` once, first thing: a helper process that formatted its own lines would
file them all at journald's default priority, without a time on a terminal.
"""

from __future__ import annotations

import logging
import os
import sys


class JournalFormatter(logging.Formatter):
    """Lines for journald: the syslog priority as a ``<N>`` prefix (journald strips it and
    files the line at that priority: ``journalctl -u softrelay -p warning`` shows warnings
    and worse), then ``logger: message``; journald adds the time and the unit."""

    def format(self, record: logging.LogRecord) -> str:
        priority = (2 if record.levelno >= logging.CRITICAL else 3 if record.levelno >=
                    logging.ERROR else 4 if record.levelno >= logging.WARNING else 6 if
                    record.levelno >= logging.INFO else 7)
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        # one journal entry per line: a traceback's lines keep the priority
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def configure_logging(terminal: bool) -> None:
    """This process's log lines to stderr, as the module says; ``terminal``: the live status
    is drawn, warnings and worse only. Once per process, first thing (``logging.basicConfig``:
    it does nothing where the root logger has a handler already)."""
    handler = logging.StreamHandler(sys.stderr)
    if "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ:
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"))
    logging.basicConfig(level=logging.WARNING if terminal else logging.INFO,
                        handlers=[handler])
