"""The channel log on Redis (mixed into :class:`~tidings.store.redis.RedisStore`).

Each channel's retained publications are a stream with entry ids ``<offset>-0``;
its last offset is a string key. An append watches the top offsets and
idempotency keys of the batch's channels and runs its writes in one MULTI
(retried if another node appended meanwhile), so offsets are assigned and
committed in order. What to write is worked out by
:func:`~tidings.store.channels.plan_appends`, as on the SQL backends.
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.exceptions import WatchError

from tidings import keys

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

_publication_decoder = msgspec.msgpack.Decoder(Publication)


def _offset(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


class RedisChannels:
    """Channel methods of the Redis store; ``redis`` is the store's client."""

    redis: Any  # redis.asyncio.Redis; its replies are typed as unions of every shape

    async def append_publications(self, batch: list[NewPublication]) -> list[PublishResult]:
        """Append a batch atomically; results in input order."""
        if not batch:
            return []
        items = list(batch)
        channels = sorted({i.channel for i in items})
        refs = sorted({(i.channel, i.idempotency_key) for i in items if i.idempotency_key})
        watched = [keys.channel_top(c) for c in channels] + [keys.channel_keys(c)
                                                               for c in channels]
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*watched)
                    tops = {c: int(await pipe.get(keys.channel_top(c)) or 0) for c in channels}
                    known: dict[KeyRef, tuple[int, int]] = {}
                    for channel, key in refs:
                        value = await pipe.hget(keys.channel_keys(channel), key)
                        if value is not None:
                            offset, at = value.split(b":")
                            known[(channel, key)] = (int(offset), int(at))
                    now = now_ms()
                    plan = plan_appends(items, tops, known, now)
                    pipe.multi()
                    self._write(pipe, plan.tops, plan.stored, plan.keys, plan.counts)
                    for channel, (up_to, _before) in plan.trims.items():
                        pipe.xtrim(keys.channel_log(channel), minid=f"{max(up_to, 0) + 1}-0",
                                   approximate=False)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        for channel, (_up_to, before) in plan.trims.items():
            await self._trim_by_age(channel, before)
        return plan.results

    @staticmethod
    def _write(pipe: Any, tops: dict[str, int], stored: list[Publication],
               idempotency: list[tuple[str, str, int, int]],
               counts: dict[tuple[str, str], int]) -> None:
        for channel, top in tops.items():
            pipe.set(keys.channel_top(channel), top)
            pipe.sadd(keys.CHANNELS, channel)
        for p in stored:
            pipe.xadd(keys.channel_log(p.channel), {"p": msgspec.msgpack.encode(p)},
                      id=f"{p.offset}-0")
        for channel, key, offset, at in idempotency:
            pipe.hset(keys.channel_keys(channel), key, f"{offset}:{at}")
        for (day, type_), count in counts.items():
            pipe.hincrby(keys.PUBLICATION_COUNTS, f"{day}|{type_}", count)

    async def _trim_by_age(self, channel: str, before: int) -> None:
        """Drop the oldest publications created before ``before`` (ms), and idempotency
        keys older than their window."""
        log = keys.channel_log(channel)
        while True:
            entries = await self.redis.xrange(log, "-", "+", count=100)
            old = [e[0] for e in entries
                   if _publication_decoder.decode(e[1][b"p"]).created_at < before]
            if old:
                await self.redis.xdel(log, *old)
            if len(old) < 100:
                break
        stale = [k for k, v in (await self.redis.hgetall(keys.channel_keys(channel))).items()
                 if int(v.split(b":")[1]) < now_ms() - IDEMPOTENCY_WINDOW_MS]
        if stale:
            await self.redis.hdel(keys.channel_keys(channel), *stale)

    async def read_channel(self, channel: str, after_offset: int, limit: int,
                           not_before: int) -> ChannelPage:
        """Publications after ``after_offset`` and where the channel's log stands."""
        async with self.redis.pipeline(transaction=True) as pipe:  # one snapshot
            pipe.get(keys.channel_top(channel))
            pipe.xrange(keys.channel_log(channel), "-", "+")
            top_raw, entries = await pipe.execute()
        top = int(top_raw or 0)
        kept = [p for p in (_publication_decoder.decode(e[1][b"p"]) for e in entries)
                if p.created_at >= not_before]
        first = kept[0].offset if kept else top + 1
        page = [p for p in kept if p.offset > after_offset][:max(limit, 0)]
        return ChannelPage(page, top, first)

    async def broker_stats(self) -> BrokerStats:
        """Publications per channel (ever, retained) and per UTC day and type."""
        channels = sorted(c.decode() for c in await self.redis.smembers(keys.CHANNELS))
        async with self.redis.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.get(keys.channel_top(channel))
                pipe.xlen(keys.channel_log(channel))
            pipe.hgetall(keys.PUBLICATION_COUNTS)
            *values, daily = await pipe.execute()
        counts = [ChannelCount(c, int(values[2 * i] or 0), int(values[2 * i + 1]))
                  for i, c in enumerate(channels)]
        days = sorted((k.decode().split("|", 1), int(v)) for k, v in daily.items())
        return BrokerStats(counts, [DailyCount(d, t, n) for (d, t), n in days])
