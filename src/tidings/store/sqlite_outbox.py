"""The webhook outbox on SQLite (mixed into :class:`~tidings.store.sqlite.SqliteStore`);
see :mod:`tidings.store.outbox`. SQLite has one writer, so a claim (one UPDATE) cannot
hand a row to two nodes."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any

from .base import now_ms
from .outbox import NewEvent, Outbox, OutboxRow
from .sqlite_helpers import one, rows, transaction

# Plain literals, never formatted: every value travels as a bound parameter.
# Only the row count is formatted in (placeholders); values are bound parameters.
_INSERT_MANY = "INSERT INTO webhook_outbox (event, data, created_at, next_at) VALUES {rows}"

_CLAIM = """
UPDATE webhook_outbox SET lease_owner = ?, lease_until = ?
WHERE id IN (SELECT id FROM webhook_outbox
             WHERE state = 'pending' AND next_at <= ? AND lease_until <= ?
             ORDER BY id LIMIT ?)
RETURNING id, event, data, created_at, state, attempts, next_at, last_error, delivered_at"""

_DELIVERED = """
UPDATE webhook_outbox SET state = 'delivered', delivered_at = ?, attempts = attempts + 1,
                          lease_owner = '', lease_until = 0
WHERE id = ? AND lease_owner = ? AND state = 'pending'"""

_FAILED = """
UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?, next_at = ?,
                          lease_owner = '', lease_until = 0,
                          state = CASE WHEN attempts + 1 >= ? THEN 'dead' ELSE 'pending' END
WHERE id = ? AND lease_owner = ? AND state = 'pending'
RETURNING state"""

_LIST_STATE = """
SELECT id, event, data, created_at, state, attempts, next_at, last_error, delivered_at
FROM webhook_outbox WHERE state = ? AND id < ? ORDER BY id DESC LIMIT ?"""

_LIST_ALL = """
SELECT id, event, data, created_at, state, attempts, next_at, last_error, delivered_at
FROM webhook_outbox WHERE id < ? ORDER BY id DESC LIMIT ?"""

_REPLAY_ONE = """
UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_at = ?, lease_owner = '',
                          lease_until = 0, last_error = '', delivered_at = NULL
WHERE id = ? AND state <> 'pending'"""

_REPLAY_DEAD = """
UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_at = ?, lease_owner = '',
                          lease_until = 0, last_error = '', delivered_at = NULL
WHERE state = 'dead'"""

_PURGE = "DELETE FROM webhook_outbox WHERE state = 'delivered' AND delivered_at < ?"

_NO_UPPER_BOUND = 2**63 - 1


_ROWS_PER_INSERT = 200  # 4 parameters a row: under SQLite's oldest variable limit (999)


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_sql(rows: int) -> str:
    return _INSERT_MANY.format(rows=", ".join(["(?, ?, ?, ?)"] * rows))


def insert_events(conn: sqlite3.Connection, events: list[NewEvent], now: int) -> None:
    """Add events inside the caller's transaction (on the store's worker thread).

    One multi-row INSERT per 200 rows: as for the messages themselves, a statement per
    row cost more Python than SQLite (store/sqlite.py)."""
    for start in range(0, len(events), _ROWS_PER_INSERT):
        chunk = events[start:start + _ROWS_PER_INSERT]
        conn.execute(_insert_sql(len(chunk)),
                     tuple(v for e, d in chunk for v in (e, d, now, now)))


class SqliteOutbox(Outbox):
    """Outbox methods; the host class provides ``_run``."""

    _run: Callable[[Callable[[sqlite3.Connection], Any]], Any]

    async def outbox_add(self, events: list[NewEvent]) -> None:
        """Add events (one transaction), due now."""
        items, now = list(events), now_ms()

        def job(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                insert_events(conn, items, now)
        if items:
            await self._run(job)

    async def outbox_claim(self, owner: str, now: int, lease_ms: int,
                           limit: int) -> list[OutboxRow]:
        """Lease due rows to ``owner`` (see :class:`Outbox`)."""
        found = await self._run(lambda c: rows(
            c, _CLAIM, (owner, now + lease_ms, now, now, limit)))
        return sorted((OutboxRow(*r) for r in found), key=lambda r: r.id)

    async def outbox_delivered(self, row_ids: list[int], owner: str, now: int) -> None:
        """Mark held rows delivered."""
        items = [(now, i, owner) for i in row_ids]

        def job(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(_DELIVERED, items)
        if items:
            await self._run(job)

    async def outbox_failed(self, row_id: int, owner: str, error: str, next_at: int,
                            max_attempts: int) -> bool:
        """Count a failed try; True if the row is dead now."""
        row = await self._run(lambda c: one(
            c, _FAILED, (error[:500], next_at, max_attempts, row_id, owner)))
        return row is not None and row[0] == "dead"

    async def outbox_list(self, state: str | None, limit: int,
                          before_id: int | None = None) -> list[OutboxRow]:
        """Rows, newest first."""
        bound = _NO_UPPER_BOUND if before_id is None else before_id
        found = await self._run(lambda c: rows(
            c, _LIST_ALL, (bound, limit)) if state is None else rows(
            c, _LIST_STATE, (state, bound, limit)))
        return [OutboxRow(*r) for r in found]

    async def outbox_replay(self, ids: list[int] | None, now: int) -> int:
        """Make rows pending again; how many."""
        def job(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                if ids is None:
                    return conn.execute(_REPLAY_DEAD, (now,)).rowcount
                return sum(conn.execute(_REPLAY_ONE, (now, i)).rowcount for i in ids)
        result: int = await self._run(job)
        return result

    async def outbox_purge(self, delivered_before: int) -> int:
        """Delete rows delivered before this time."""
        def job(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return conn.execute(_PURGE, (delivered_before,)).rowcount
        result: int = await self._run(job)
        return result
