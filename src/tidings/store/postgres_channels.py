"""The channel log on PostgreSQL (mixed into :class:`~tidings.store.postgres.PostgresStore`).

An append locks the row of every channel it touches, in name order, for the
whole transaction: appends to one channel (from any task or any node) queue
there, so offsets commit in offset order; the fixed order rules out deadlocks.
Appends to different channels run in parallel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from . import outbox
from .base import now_ms
from .channels import (
    IDEMPOTENCY_WINDOW_MS,
    BrokerStats,
    ChannelCount,
    ChannelPage,
    DailyCount,
    NewPublication,
    Publication,
    PublishResult,
    plan_appends,
)
from .postgres_outbox import INSERT_EVENTS

# Plain literals, never formatted: every value travels as a bound parameter.
_LOCK_CHANNELS = """
INSERT INTO channels (name, top_offset, created_at)
SELECT n, 0, $2 FROM unnest($1::text[]) AS n ORDER BY n
ON CONFLICT (name) DO UPDATE SET top_offset = channels.top_offset
RETURNING name, top_offset"""

_KEYS = """
SELECT channel, idempotency_key, position, created_at FROM publish_keys
WHERE (channel, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"""

_SET_TOPS = """
UPDATE channels SET top_offset = u.t FROM unnest($1::text[], $2::bigint[]) AS u(n, t)
WHERE channels.name = u.n"""

_INSERT = """
INSERT INTO publications (channel, position, type, data, publisher_id, publisher_device,
                          created_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[],
                     $6::text[], $7::bigint[])"""

_UPSERT_KEYS = """
INSERT INTO publish_keys (channel, idempotency_key, position, created_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
ON CONFLICT (channel, idempotency_key)
DO UPDATE SET position = EXCLUDED.position, created_at = EXCLUDED.created_at"""

_TRIM = """
DELETE FROM publications p USING unnest($1::text[], $2::bigint[], $3::bigint[]) AS t(c, upto, b)
WHERE p.channel = t.c AND (p.position <= t.upto OR p.created_at < t.b)"""

_COUNT = """
INSERT INTO publication_counts (day, type, count)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT (day, type) DO UPDATE SET count = publication_counts.count + EXCLUDED.count"""

_PURGE_KEYS = "DELETE FROM publish_keys WHERE created_at < $1"

_TOP = "SELECT top_offset FROM channels WHERE name = $1"

_FIRST = "SELECT min(position) FROM publications WHERE channel = $1 AND created_at >= $2"

_PAGE = """
SELECT channel, position, type, data, publisher_id, publisher_device, created_at
FROM publications WHERE channel = $1 AND position > $2 AND created_at >= $3
ORDER BY position LIMIT $4"""

_CHANNEL_COUNTS = """
SELECT c.name, c.top_offset, (SELECT count(*) FROM publications p WHERE p.channel = c.name)
FROM channels c ORDER BY c.name"""

_DAILY = "SELECT day, type, count FROM publication_counts ORDER BY day, type"


class PostgresChannels:
    """Channel methods of the PostgreSQL store; ``_get_pool`` is the store's pool."""

    _get_pool: Callable[[], Awaitable[Any]]
    outbox_events: frozenset[str]

    async def append_publications(self, batch: list[NewPublication]) -> list[PublishResult]:
        """Append a batch in one transaction; results in input order."""
        if not batch:
            return []
        items = list(batch)
        now = now_ms()
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            names = sorted({i.channel for i in items})
            tops = {r[0]: int(r[1]) for r in await conn.fetch(_LOCK_CHANNELS, names, now)}
            keyed = [i for i in items if i.idempotency_key]
            known = {}
            if keyed:
                rows = await conn.fetch(_KEYS, [i.channel for i in keyed],
                                        [i.idempotency_key for i in keyed])
                known = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}
            plan = plan_appends(items, tops, known, now)
            await conn.execute(_SET_TOPS, list(plan.tops), list(plan.tops.values()))
            if plan.stored:
                s = plan.stored
                await conn.execute(
                    _INSERT, [p.channel for p in s], [p.offset for p in s], [p.type for p in s],
                    [p.data for p in s], [p.publisher_id for p in s],
                    [p.publisher_device for p in s], [p.created_at for p in s])
            if plan.keys:
                await conn.execute(_UPSERT_KEYS, *(list(col) for col in zip(*plan.keys,
                                                                            strict=True)))
            if plan.trims:
                await conn.execute(_TRIM, list(plan.trims),
                                   [t[0] for t in plan.trims.values()],
                                   [t[1] for t in plan.trims.values()])
            if plan.counts:
                await conn.execute(_COUNT, [d for d, _ in plan.counts],
                                   [t for _, t in plan.counts], list(plan.counts.values()))
            await conn.execute(_PURGE_KEYS, now - IDEMPOTENCY_WINDOW_MS)
            if "publication" in self.outbox_events:  # the webhook rides this commit
                events = outbox.publications(
                    [r.publication for r in plan.results if r.publication is not None])
                if events:
                    await conn.execute(INSERT_EVENTS, [e for e, _ in events],
                                       [d for _, d in events], now)
        return plan.results

    async def read_channel(self, channel: str, after_offset: int, limit: int,
                           not_before: int) -> ChannelPage:
        """Publications after ``after_offset`` and where the channel's log stands."""
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                            readonly=True):
            top = await conn.fetchval(_TOP, channel)
            first = await conn.fetchval(_FIRST, channel, not_before)
            rows = await conn.fetch(_PAGE, channel, after_offset, not_before, max(limit, 0))
        top = 0 if top is None else int(top)
        return ChannelPage([Publication(*r) for r in rows], top,
                           top + 1 if first is None else int(first))

    async def broker_stats(self) -> BrokerStats:
        """Publications per channel and per day and type."""
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            channels = [ChannelCount(r[0], int(r[1]), int(r[2]))
                        for r in await conn.fetch(_CHANNEL_COUNTS)]
            daily = [DailyCount(r[0], r[1], int(r[2])) for r in await conn.fetch(_DAILY)]
        return BrokerStats(channels, daily)
