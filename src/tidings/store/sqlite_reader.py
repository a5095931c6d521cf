"""Point reads of the SQLite store on the event loop's own thread.

Every other statement runs on the store's worker thread, handed over and back
(store/sqlite_worker.py). For a read of one row by key — the user or the token
that every authentication looks up — the hand-off costs far more than the read:
about 80 µs of the node's CPU per Socket.IO connect (two thread switches, the GIL
passed back and forth) against a few µs for the lookup (docs/benchmarks.md, 4c).

In WAL mode a reader never waits for the writer: each statement here is its own
read transaction and sees every commit made before it began. If SQLite is busy
anyway (a checkpoint resetting the WAL, another process holding a lock) the read
is not waited for here, on the event loop: :meth:`PointReader.rows` says so and
the store asks its worker, which may wait.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .sqlite_helpers import rows


class PointReader:
    """A read-only connection for the event loop's short lookups by key."""

    def __init__(self, path: str) -> None:
        # A second connection to an in-memory database would be another database.
        self._usable = path != ":memory:" and not path.startswith("file:")
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[Any] | None:
        """The statement's rows, or None if it could not run here without waiting."""
        if not self._usable:
            return None
        try:
            if self._conn is None:
                # timeout=0: never sleep on a lock in the event loop. check_same_thread
                # off: a test may close the store from another thread than it read on.
                conn = sqlite3.connect(self._path, timeout=0, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA query_only=ON")
                self._conn = conn
            return rows(self._conn, sql, params)
        except sqlite3.OperationalError:  # busy or locked: the worker waits for it
            return None

    def close(self) -> None:
        """Close the connection (it is opened again by the next read)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
