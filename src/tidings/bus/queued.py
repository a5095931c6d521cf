"""What the Redis and PostgreSQL buses share: a send queue, its sender, and delivery.

Publishing never waits for the server behind the bus: events go to a bounded queue
(beyond ``queue_size`` they are dropped and counted) that one task sends, in order,
in batches, retrying with backoff while the server is unreachable. A subclass says
how an event is encoded, how a batch is sent, which errors mean "retry", and which
background tasks receive.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, Generic, TypeVar

from tidings.bus.base import Bus, Event, GapHandler, Handler
from tidings.bus.wire import Envelope, EventCodec
from tidings.metrics import Metrics

log = logging.getLogger(__name__)

Encoded = TypeVar("Encoded", str, bytes)

LINK_TIMEOUT = 3.0
"""Seconds a bus waits for its server before it counts the link as lost: a network
partition does not refuse or reset, it goes silent (the listeners probe their link
every second; a send that takes longer fails and is retried)."""

BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Seconds between reconnection attempts: the n-th retry waits BACKOFF[min(n, 4)]."""


async def backoff(attempt: int) -> None:
    """Sleep before retry number ``attempt`` (0-based)."""
    await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])


class QueuedBus(Bus, Generic[Encoded]):
    """A bus whose events are queued locally and sent by one background task."""

    name: ClassVar[str]
    """How log lines name this bus (``redis bus``)."""
    batch_size: ClassVar[int] = 256
    retry_on: ClassVar[tuple[type[BaseException], ...]] = (OSError,)
    """Errors of the sending call that mean "the server is unreachable: retry"."""

    def __init__(self, *, node_id: str, metrics: Metrics | None, queue_size: int) -> None:
        self._codec = EventCodec(node_id)
        self._metrics = metrics
        self._queue: asyncio.Queue[Encoded] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._handler: Handler | None = None
        self._on_gap: GapHandler | None = None
        self._ready = asyncio.Event()  # set while receiving works
        self._problem = "not started"
        # Set at close: a client library may turn our task's cancellation into one of
        # its own errors, which the retry loops would otherwise catch and retry forever.
        self._closing = False

    @abc.abstractmethod
    def _encode(self, envelope: Envelope) -> Encoded:
        """One event as sent over the bus."""

    @abc.abstractmethod
    async def _send_batch(self, batch: list[Encoded]) -> None:
        """Send events, in order; raise one of ``retry_on`` to have it retried."""

    @abc.abstractmethod
    def _receivers(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The background tasks that receive events, by task name."""

    async def _release(self) -> None:
        """Close connections once the tasks have stopped."""

    def _sender_failed(self) -> None:
        """Forget a connection the sender found broken."""

    async def start(self, handler: Handler, on_gap: GapHandler | None = None) -> None:
        """Start receiving (waits up to 10 s until it works) and sending."""
        self._handler, self._on_gap = handler, on_gap
        loop = asyncio.get_running_loop()
        tasks = {**self._receivers(), f"{self.name}-send": self._send()}
        self._tasks = [loop.create_task(coro, name=name.replace(" ", "-"))
                       for name, coro in tasks.items()]
        try:
            await asyncio.wait_for(self._ready.wait(), 10.0)
        except TimeoutError:
            log.warning("%s: not receiving yet (%s); retrying in the background",
                        self.name, self._problem)

    async def publish(self, event: Event) -> None:
        """Queue an event for every node; never waits for the server."""
        try:
            self._queue.put_nowait(self._encode(self._codec.wrap(event)))
        except asyncio.QueueFull:
            log.error("%s: send queue full, event dropped", self.name)
            if self._metrics is not None:
                self._metrics.bus_dropped.inc()

    async def close(self) -> None:
        """Send what is queued (for up to 2 s), then stop."""
        if self._tasks:
            try:
                await asyncio.wait_for(self._queue.join(), 2.0)
            except TimeoutError:
                log.warning("%s: %d events not sent at close", self.name, self._queue.qsize())
            self._closing = True
            for task in self._tasks:
                task.cancel()
            await asyncio.wait(self._tasks, timeout=5.0)
            self._tasks = []
        await self._release()

    def health(self) -> str:
        """``ok`` while receiving works, else the last error."""
        return "ok" if self._ready.is_set() else f"error: {self._problem}"

    async def _send(self) -> None:
        while not self._closing:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < self.batch_size:
                batch.append(self._queue.get_nowait())
            attempt = 0
            while not self._closing:
                try:
                    await self._send_batch(batch)
                    break
                except self.retry_on as exc:
                    self._problem = str(exc) or type(exc).__name__
                    log.warning("%s: sending failed (%s); retrying", self.name, self._problem)
                    self._sender_failed()
                    await backoff(attempt)
                    attempt += 1
            if self._metrics is not None:
                self._metrics.bus_published.inc(len(batch))
            for _ in batch:
                self._queue.task_done()

    def _reconnected(self) -> None:
        """Count a reconnection; the caller then reports the gap (in order with events)."""
        log.warning("%s: receiving again; reading missed messages from the store", self.name)
        if self._metrics is not None:
            self._metrics.bus_reconnects.inc()

    def _gap(self) -> None:
        if self._on_gap is not None:
            self._on_gap()

    def _dispatch(self, envelope: Envelope) -> None:
        """Hand one received event to the node, counting it and its latency."""
        if self._metrics is not None:
            origin = "local" if envelope.node == self._codec.node else "remote"
            self._metrics.bus_received.labels(origin).inc()
            self._metrics.bus_latency.observe(max(0.0, time.time() - envelope.sent_at))
        assert self._handler is not None
        try:
            self._handler(envelope.event)
        except Exception:
            log.exception("%s: event handler failed", self.name)

    def _undecodable(self, exc: Exception) -> None:
        log.error("%s: undecodable event dropped: %s", self.name, exc)
        if self._metrics is not None:
            self._metrics.bus_dropped.inc()
