"""Seed 004's 30-day message retention on the Redis store (mixed into
:class:`~tidings.store.redis.RedisStore`).

Stream entry ids are message ids (``<id>-0``), not times, so the append script also
records each batch's last id under the Redis clock in ``message_times``. To drop
what is older than a cutoff, :meth:`RedisRetention.trim_messages` looks up the last
id stored before it, then ``XTRIM … MINID`` every inbox and conversation stream
to the next id, and removes those messages' bodies, statuses, undelivered marks
and idempotency keys, so nothing refers to a message that is gone.
"""

from __future__ import annotations

from typing import Any

from tidings import keys

_SCAN_COUNT = 500


class RedisRetention:
    """Retention methods of the Redis store; ``redis`` is the store's client."""

    redis: Any  # redis.asyncio.Redis

    async def trim_messages(self, cutoff_ms: int) -> int:
        """Remove every message stored before ``cutoff_ms`` (Redis clock, ms since the
        epoch); return how many stream entries were trimmed."""
        before = await self.redis.xrevrange(keys.MESSAGE_TIMES, cutoff_ms, "-", count=1)
        if not before:
            return 0
        keep_from = int(before[0][1][b"i"]) + 1
        minid = f"{keep_from}-0"
        trimmed = 0
        async for key in self.redis.scan_iter(match=keys.INBOX_PATTERN, count=_SCAN_COUNT):
            old = await self.redis.xrange(key, "-", f"({minid}")
            if old:
                ids = [int(entry_id.split(b"-")[0]) for entry_id, _ in old]
                user_id = key.decode().rsplit(":", 1)[1]
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.hdel(keys.MESSAGES, *ids)
                    pipe.hdel(keys.STATUSES, *ids)
                    pipe.zremrangebyscore(keys.undelivered(int(user_id)), "-inf", keep_from - 1)
                    await pipe.execute()
            trimmed += int(await self.redis.xtrim(key, minid=minid, approximate=False))
        async for key in self.redis.scan_iter(match=keys.CONVERSATION_PATTERN,
                                              count=_SCAN_COUNT):
            trimmed += int(await self.redis.xtrim(key, minid=minid, approximate=False))
        stale = [field async for field, value in self.redis.hscan_iter(
            keys.CLIENT_SEQS, count=_SCAN_COUNT) if int(value) < keep_from]
        if stale:
            await self.redis.hdel(keys.CLIENT_SEQS, *stale)
        await self.redis.xtrim(keys.MESSAGE_TIMES, minid=cutoff_ms, approximate=False)
        return trimmed
