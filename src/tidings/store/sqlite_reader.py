"""Short reads of the SQLite store on the event loop's own thread.

Every other statement runs on the store's worker thread, handed over and back
(store/sqlite_worker.py). For the reads every connect makes — the user or the token
an authentication looks up, the device's cursor, the first page of its backlog —
the hand-offs cost more than the reads: taking them off the worker saved about 70 µs
of the node's CPU per Socket.IO connect and 130 µs per ``/ws`` connect (two thread
switches per read, the GIL passed back and forth), against a few µs for a lookup by
key (docs/benchmarks.md, run D).

Only short reads come here: a lookup by key, or a page of at most
:data:`LOOP_READ_ROWS` rows; a longer page goes to the worker. In WAL mode a reader
never waits for the writer: each statement here is its own read transaction and sees
every commit made before it began. If SQLite is busy anyway (a checkpoint resetting
the WAL, another process holding a lock) the read is not waited for here, on the
event loop: :meth:`LoopReader.rows` says so and the store asks its worker, which may
wait.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .sqlite_helpers import rows

LOOP_READ_ROWS = 100
"""The longest page read on the event loop (the default ``sync_page_size``)."""


class LoopReader:
    """A query-only connection for the event loop's short reads."""

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
