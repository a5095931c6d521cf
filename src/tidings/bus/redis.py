"""The Redis bus: pub/sub on one channel (redis-py asyncio, hiredis parser).

Publishing never waits for Redis: events go to a bounded queue that one task
sends, in order, pipelined. While Redis is unreachable the queue holds events
(up to ``queue_size``; beyond that they are dropped and counted) and both tasks
retry with backoff. Pub/sub keeps nothing for a subscriber that was away, so
after every reconnection the bus calls ``on_gap``: the hub then reads from the
store whatever its connections may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tidings import keys
from tidings.bus.base import Bus, Event, GapHandler, Handler
from tidings.bus.wire import EventCodec
from tidings.metrics import Metrics

log = logging.getLogger(__name__)

_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)


class RedisBus(Bus):
    """Events through a Redis pub/sub channel shared by every node."""

    def __init__(self, url: str, *, node_id: str, metrics: Metrics | None = None,
                 queue_size: int = 100_000) -> None:
        self._url = url
        self._codec = EventCodec(node_id)
        self._metrics = metrics
        self._redis: aioredis.Redis = aioredis.from_url(
            url, socket_connect_timeout=2.0, socket_keepalive=True, health_check_interval=5)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._handler: Handler | None = None
        self._on_gap: GapHandler | None = None
        self._subscribed = asyncio.Event()
        self._problem = "not started"
        # Set at close: a client library may turn our task's cancellation into one of
        # its own errors, which the retry loops would otherwise catch and retry forever.
        self._closing = False

    async def start(self, handler: Handler, on_gap: GapHandler | None = None) -> None:
        """Subscribe (waits up to 10 s for the first subscription), then start sending."""
        self._handler, self._on_gap = handler, on_gap
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen(), name="redis-bus-listen"),
                       loop.create_task(self._send(), name="redis-bus-send")]
        try:
            await asyncio.wait_for(self._subscribed.wait(), 10.0)
        except TimeoutError:
            log.warning("redis bus: not subscribed yet (%s); retrying in the background",
                        self._problem)

    async def publish(self, event: Event) -> None:
        """Queue an event for every node; never waits for Redis."""
        data = self._codec.to_msgpack(self._codec.wrap(event))
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            log.error("redis bus: send queue full, event dropped")
            if self._metrics is not None:
                self._metrics.bus_dropped.inc()

    async def close(self) -> None:
        """Send what is queued (for up to 2 s), then stop."""
        if self._tasks:
            try:
                await asyncio.wait_for(self._queue.join(), 2.0)
            except TimeoutError:
                log.warning("redis bus: %d events not sent at close", self._queue.qsize())
            self._closing = True
            for task in self._tasks:
                task.cancel()
            await asyncio.wait(self._tasks, timeout=5.0)
            self._tasks = []
        await self._redis.aclose()

    def health(self) -> str:
        """``ok`` while subscribed, else the last error."""
        return "ok" if self._subscribed.is_set() else f"error: {self._problem}"

    async def _send(self) -> None:
        attempt = 0
        while not self._closing:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 512:
                batch.append(self._queue.get_nowait())
            while not self._closing:
                try:
                    pipe = self._redis.pipeline(transaction=False)
                    for data in batch:
                        pipe.publish(keys.BUS_CHANNEL, data)
                    await pipe.execute()
                    break
                except (RedisError, OSError) as exc:
                    self._problem = str(exc) or type(exc).__name__
                    log.warning("redis bus: publish failed (%s); retrying", self._problem)
                    await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                    attempt += 1
            attempt = 0
            if self._metrics is not None:
                self._metrics.bus_published.inc(len(batch))
            for _ in batch:
                self._queue.task_done()

    async def _listen(self) -> None:
        attempt = 0
        connected_before = False
        while not self._closing:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.BUS_CHANNEL)
                if connected_before:
                    log.warning("redis bus: subscribed again; reading missed messages from "
                                "the store")
                    if self._metrics is not None:
                        self._metrics.bus_reconnects.inc()
                    if self._on_gap is not None:
                        self._on_gap()
                else:
                    log.info("redis bus: subscribed to %s", keys.BUS_CHANNEL)
                connected_before = True
                self._subscribed.set()
                attempt = 0
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "message":
                        self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                self._problem = str(exc) or type(exc).__name__
                log.warning("redis bus: connection lost (%s); reconnecting", self._problem)
                await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                attempt += 1
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _deliver(self, data: bytes) -> None:
        try:
            envelope = self._codec.from_msgpack(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("redis bus: undecodable event dropped: %s", exc)
            if self._metrics is not None:
                self._metrics.bus_dropped.inc()
            return
        if self._metrics is not None:
            origin = "local" if envelope.node == self._codec.node else "remote"
            self._metrics.bus_received.labels(origin).inc()
            self._metrics.bus_latency.observe(max(0.0, time.time() - envelope.sent_at))
        assert self._handler is not None
        try:
            self._handler(envelope.event)
        except Exception:
            log.exception("redis bus: event handler failed")
