"""The channel log on SQLite (mixed into :class:`~tidings.store.sqlite.SqliteStore`).

SQLite has one writer and ``BEGIN IMMEDIATE`` takes the write lock first, so
offsets are read, assigned and committed without interleaving: commit order is
offset order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from . import outbox
from .base import now_ms
from .channels import (
    IDEMPOTENCY_WINDOW_MS,
    BrokerStats,
    ChannelCount,
    ChannelPage,
    DailyCount,
    KeyRef,
    NewPublication,
    Publication,
    PublishResult,
    plan_appends,
)
from .sqlite_helpers import rows as _all
from .sqlite_outbox import insert_events

T = TypeVar("T")

_TOP = "SELECT top_offset FROM channels WHERE name = ?"

_KEY = """
SELECT position, created_at FROM publish_keys WHERE channel = ? AND idempotency_key = ?"""

_SET_TOP = """
INSERT INTO channels (name, top_offset, created_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET top_offset = excluded.top_offset"""

_INSERT = """
INSERT INTO publications (channel, position, type, data, publisher_id, publisher_device,
                          created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)"""

_UPSERT_KEY = """
INSERT INTO publish_keys (channel, idempotency_key, position, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (channel, idempotency_key)
DO UPDATE SET position = excluded.position, created_at = excluded.created_at"""

_TRIM = """
DELETE FROM publications WHERE channel = ? AND (position <= ? OR created_at < ?)"""

_COUNT = """
INSERT INTO publication_counts (day, type, count) VALUES (?, ?, ?)
ON CONFLICT (day, type) DO UPDATE SET count = count + excluded.count"""

_PURGE_KEYS = "DELETE FROM publish_keys WHERE created_at < ?"

_FIRST = "SELECT min(position) FROM publications WHERE channel = ? AND created_at >= ?"

_PAGE = """
SELECT channel, position, type, data, publisher_id, publisher_device, created_at
FROM publications WHERE channel = ? AND position > ? AND created_at >= ?
ORDER BY position LIMIT ?"""

_CHANNEL_COUNTS = """
SELECT c.name, c.top_offset, (SELECT count(*) FROM publications p WHERE p.channel = c.name)
FROM channels c ORDER BY c.name"""

_DAILY = "SELECT day, type, count FROM publication_counts ORDER BY day, type"


class SqliteChannels:
    """Channel methods of the SQLite store; ``_run`` is the store's worker-thread call."""

    _run: Callable[[Callable[[sqlite3.Connection], Any]], Any]
    outbox_events: frozenset[str]

    async def append_publications(self, batch: list[NewPublication]) -> list[PublishResult]:
        """Append a batch in one transaction; results in input order."""
        if not batch:
            return []
        items = list(batch)
        record = "publication" in self.outbox_events

        def job(conn: sqlite3.Connection) -> list[PublishResult]:
            now = now_ms()
            conn.execute("BEGIN IMMEDIATE")
            try:
                tops: dict[str, int] = {}
                known: dict[KeyRef, tuple[int, int]] = {}
                for item in items:
                    if item.channel not in tops:
                        row = _all(conn, _TOP, (item.channel,))
                        tops[item.channel] = int(row[0][0]) if row else 0
                    if item.idempotency_key:
                        ref = (item.channel, item.idempotency_key)
                        if ref not in known and (row := _all(conn, _KEY, ref)):
                            known[ref] = (int(row[0][0]), int(row[0][1]))
                plan = plan_appends(items, tops, known, now)
                conn.executemany(_SET_TOP, [(c, t, now) for c, t in plan.tops.items()])
                conn.executemany(_INSERT, [
                    (p.channel, p.offset, p.type, p.data, p.publisher_id, p.publisher_device,
                     p.created_at) for p in plan.stored])
                conn.executemany(_UPSERT_KEY, plan.keys)
                conn.executemany(_TRIM, [(c, upto, before)
                                         for c, (upto, before) in plan.trims.items()])
                conn.executemany(_COUNT, [(d, t, n) for (d, t), n in plan.counts.items()])
                conn.execute(_PURGE_KEYS, (now - IDEMPOTENCY_WINDOW_MS,))
                if record:  # the webhook rides this commit (store/outbox.py)
                    insert_events(conn, outbox.publications(
                        [r.publication for r in plan.results if r.publication is not None]),
                        now)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return plan.results
        result: list[PublishResult] = await self._run(job)
        return result

    async def read_channel(self, channel: str, after_offset: int, limit: int,
                           not_before: int) -> ChannelPage:
        """Publications after ``after_offset`` and where the channel's log stands."""
        def job(conn: sqlite3.Connection) -> ChannelPage:
            conn.execute("BEGIN")  # one snapshot for the three reads
            try:
                top_row = _all(conn, _TOP, (channel,))
                top = int(top_row[0][0]) if top_row else 0
                first = _all(conn, _FIRST, (channel, not_before))[0][0]
                rows = _all(conn, _PAGE, (channel, after_offset, not_before, max(limit, 0)))
            finally:
                conn.execute("COMMIT")
            return ChannelPage([Publication(*r) for r in rows], top,
                               top + 1 if first is None else int(first))
        page: ChannelPage = await self._run(job)
        return page

    async def broker_stats(self) -> BrokerStats:
        """Publications per channel and per day and type."""
        def job(conn: sqlite3.Connection) -> BrokerStats:
            return BrokerStats([ChannelCount(*r) for r in _all(conn, _CHANNEL_COUNTS)],
                               [DailyCount(*r) for r in _all(conn, _DAILY)])
        stats: BrokerStats = await self._run(job)
        return stats
