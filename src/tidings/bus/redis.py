"""The Redis bus: pub/sub on one channel (redis-py asyncio, hiredis parser).

Events are queued and sent in pipelined batches by one task (bus/queued.py). Pub/sub
keeps nothing for a subscriber that was away, so after every reconnection the bus
calls ``on_gap``: the hub then reads from the store whatever its connections may
have missed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tidings import keys
from tidings.bus.queued import QueuedBus, backoff
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
            url, socket_connect_timeout=2.0, socket_keepalive=True, health_check_interval=5)

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
                await pubsub.subscribe(keys.BUS_CHANNEL)
                # Wait for Redis to confirm: only then can no event published from
                # here on be missed (start() promises that).
                message = None
                while message is None or message["type"] != "subscribe":
                    message = await pubsub.get_message(timeout=None)
                if connected_before:
                    self._reconnected()
                    self._gap()
                else:
                    log.info("redis bus: subscribed to %s", keys.BUS_CHANNEL)
                connected_before = True
                self._ready.set()
                attempt = 0
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "message":
                        self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                self._ready.clear()
                self._problem = str(exc) or type(exc).__name__
                log.warning("redis bus: connection lost (%s); reconnecting", self._problem)
                await backoff(attempt)
                attempt += 1
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _deliver(self, data: bytes) -> None:
        try:
            envelope = self._codec.from_msgpack(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._undecodable(exc)
            return
        self._dispatch(envelope)
