"""The Redis bus: pub/sub on one channel (redis-py asyncio, hiredis parser).

Events are queued and sent in pipelined batches by one task (bus/queued.py). Pub/sub
keeps nothing for a subscriber that was away, so after every reconnection the bus
calls ``on_gap``: the hub then reads from the store whatever its connections may
have missed.

A partitioned network does not close the subscription: it goes silent. So the
listener pings Redis over its subscription after every second without traffic, and a
link silent for ``LINK_TIMEOUT`` seconds is taken for lost (health turns 503 and the
bus subscribes again on a new connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tidings import keys
from tidings.bus.queued import LINK_TIMEOUT, QueuedBus, backoff
from tidings.bus.wire import Envelope
from tidings.metrics import Metrics
from tidings.redis_pool import redis_client

log = logging.getLogger(__name__)


class RedisBus(QueuedBus[bytes]):
    """Events through a Redis pub/sub channel shared by every node."""

    name = "redis bus"
    batch_size = 512
    retry_on = (RedisError, OSError)

    def __init__(self, url: str, *, node_id: str, metrics: Metrics | None = None,
                 queue_size: int = 100_000) -> None:
        super().__init__(node_id=node_id, metrics=metrics, queue_size=queue_size)
        self._url = url
        self._redis: aioredis.Redis = redis_client(
            url, socket_connect_timeout=2.0, socket_timeout=LINK_TIMEOUT, socket_keepalive=True)

    def _encode(self, envelope: Envelope) -> bytes:
        return self._codec.to_msgpack(envelope)

    async def _send_batch(self, batch: list[bytes]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for data in batch:
            pipe.publish(keys.BUS_CHANNEL, data)
        await pipe.execute()

    def _receivers(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {"redis-bus-listen": self._listen()}

    async def _release(self) -> None:
        await self._redis.aclose()

    async def _listen(self) -> None:
        attempt = 0
        connected_before = False
        while not self._closing:
            pubsub = self._redis.pubsub()
            try:
                async with asyncio.timeout(LINK_TIMEOUT):
                    await pubsub.subscribe(keys.BUS_CHANNEL)
                    # Wait for Redis to confirm: only then can no event published from
                    # here on be missed (start() promises that).
                    message = None
                    while message is None or message["type"] != "subscribe":
                        message = await pubsub.get_message(timeout=LINK_TIMEOUT)
                if connected_before:
                    self._reconnected()
                    self._gap()
                else:
                    log.info("redis bus: subscribed to %s", keys.BUS_CHANNEL)
                connected_before = True
                self._ready.set()
                attempt = 0
                await self._receive(pubsub)
            except (RedisError, OSError, TimeoutError) as exc:
                self._ready.clear()
                self._problem = str(exc) or (
                    f"no answer from Redis within {LINK_TIMEOUT:g} s"
                    if isinstance(exc, TimeoutError) else type(exc).__name__)
                log.warning("redis bus: connection lost (%s); reconnecting", self._problem)
                await backoff(attempt)
                attempt += 1
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _receive(self, pubsub: Any) -> None:
        """Deliver events until the link fails or stays silent for ``LINK_TIMEOUT``."""
        heard = pinged = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is not None:
                heard = now
                if message["type"] == "message":
                    self._deliver(message["data"])
                continue
            if now - heard > LINK_TIMEOUT:
                raise TimeoutError(f"no answer from Redis for {now - heard:.1f} s")
            if now - pinged >= 1.0:  # its "pong" comes back as a message
                pinged = now
                await pubsub.ping()

    def _deliver(self, data: bytes) -> None:
        try:
            envelope = self._codec.from_msgpack(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._undecodable(exc)
            return
        self._dispatch(envelope)
