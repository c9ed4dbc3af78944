"""A bounded queue of events on disk: what the broker has not acknowledged yet.

SQLite (one file, write-ahead log): an event is kept from the moment it arrives until the
broker's acknowledgement removes it, across broker outages and relay restarts. Beyond
``max_events`` the oldest are dropped and counted (the count is kept in the same file). Events
are keyed by their sequence number, which never repeats, so putting one twice keeps one.
Safe from any thread.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class EventSpool:
    def __init__(self, path: Path, max_events: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_events = max_events
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at each checkpoint
        self._db.execute("CREATE TABLE IF NOT EXISTS events "
                         "(seq INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters "
                         "(name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        with self._db:  # (a transaction each: committed on leaving the block)
            self._db.execute("INSERT OR IGNORE INTO counters VALUES ('dropped', 0)")

    def put(self, seq: int, payload: str) -> int:
        """Keep one event; returns how many old ones were dropped to make room."""
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO events VALUES (?, ?)", (seq, payload))
            (count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
            excess = count - self.max_events
            if excess > 0:
                self._db.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events "
                                 "ORDER BY seq LIMIT ?)", (excess,))
                self._db.execute("UPDATE counters SET value = value + ? WHERE name = "
                                 "'dropped'", (excess,))
            return max(excess, 0)

    def remove(self, seq: int) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))

    def pending(self, after: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """Up to ``limit`` kept events numbered above ``after``, oldest first."""
        with self._lock:
            return self._db.execute("SELECT seq, payload FROM events WHERE seq > ? ORDER BY "
                                    "seq LIMIT ?", (after, limit)).fetchall()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    @property
    def dropped(self) -> int:
        """Events dropped for room since the file was created."""
        with self._lock:
            return self._db.execute("SELECT value FROM counters WHERE name = "
                                    "'dropped'").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
