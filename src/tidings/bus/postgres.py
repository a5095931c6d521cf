"""The PostgreSQL bus: LISTEN/NOTIFY on one channel.

NOTIFY payloads are text and at most 8000 bytes. An event whose JSON is longer
is written to the table ``tidings_bus_spill`` and the notification carries only
``@<row id>``; every node reads the row back (rows are pruned after ten
minutes). The table is unlogged (it holds nothing worth a WAL write) and created
by the bus itself, so the bus works beside any store.

Events are sent by one task, in order, several per transaction; PostgreSQL
delivers notifications in commit order. The listening connection is checked
every second; after it is lost and made again the bus calls ``on_gap``, since
NOTIFY keeps nothing for an absent listener.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import msgspec

from tidings.bus.base import Bus, Event, GapHandler, Handler
from tidings.bus.wire import EventCodec
from tidings.metrics import Metrics

log = logging.getLogger(__name__)

CHANNEL = "tidings_bus"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes including the channel name
SPILL_PREFIX = "@"
_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)

_CREATE_SPILL = """
CREATE UNLOGGED TABLE IF NOT EXISTS tidings_bus_spill (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""
_INSERT_SPILL = "INSERT INTO tidings_bus_spill (payload) VALUES ($1) RETURNING id"
_READ_SPILL = "SELECT payload FROM tidings_bus_spill WHERE id = $1"
_PRUNE_SPILL = "DELETE FROM tidings_bus_spill WHERE created_at < now() - interval '10 minutes'"
_NOTIFY_MANY = """
SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n"""


class PostgresBus(Bus):
    """Events through PostgreSQL notifications shared by every node."""

    def __init__(self, url: str, *, node_id: str, metrics: Metrics | None = None,
                 queue_size: int = 100_000) -> None:
        self._url = url
        self._codec = EventCodec(node_id)
        self._metrics = metrics
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self._incoming: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._handler: Handler | None = None
        self._on_gap: GapHandler | None = None
        self._listening = asyncio.Event()
        self._problem = "not started"
        # Set at close: a client library may turn our task's cancellation into one of
        # its own errors, which the retry loops would otherwise catch and retry forever.
        self._closing = False
        # Two tasks talk to PostgreSQL besides the listener, each on its own connection.
        self._conns: dict[str, Any] = {"send": None, "read": None}

    async def start(self, handler: Handler, on_gap: GapHandler | None = None) -> None:
        """Create the spill table, LISTEN (waits up to 10 s), then start sending."""
        self._handler, self._on_gap = handler, on_gap
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen(), name="pg-bus-listen"),
                       loop.create_task(self._deliver_loop(), name="pg-bus-deliver"),
                       loop.create_task(self._send(), name="pg-bus-send")]
        try:
            await asyncio.wait_for(self._listening.wait(), 10.0)
        except TimeoutError:
            log.warning("postgres bus: not listening yet (%s); retrying in the background",
                        self._problem)

    async def publish(self, event: Event) -> None:
        """Queue an event for every node; never waits for PostgreSQL."""
        try:
            self._outgoing.put_nowait(self._codec.to_json(self._codec.wrap(event)))
        except asyncio.QueueFull:
            log.error("postgres bus: send queue full, event dropped")
            if self._metrics is not None:
                self._metrics.bus_dropped.inc()

    async def close(self) -> None:
        """Send what is queued (for up to 2 s), then stop."""
        if self._tasks:
            try:
                await asyncio.wait_for(self._outgoing.join(), 2.0)
            except TimeoutError:
                log.warning("postgres bus: %d events not sent at close", self._outgoing.qsize())
            self._closing = True
            for task in self._tasks:
                task.cancel()
            await asyncio.wait(self._tasks, timeout=5.0)
            self._tasks = []
        self._drop("send")
        self._drop("read")

    def health(self) -> str:
        """``ok`` while listening, else the last error."""
        return "ok" if self._listening.is_set() else f"error: {self._problem}"

    async def _connection(self, role: str) -> Any:
        conn = self._conns[role]
        if conn is None or conn.is_closed():
            conn = self._conns[role] = await asyncpg.connect(self._url, timeout=5)
            await conn.execute(_CREATE_SPILL)
        return conn

    def _drop(self, role: str) -> None:
        conn, self._conns[role] = self._conns[role], None
        if conn is not None:
            conn.terminate()

    async def _send(self) -> None:
        attempt = 0
        pruned = 0.0
        while not self._closing:
            batch = [await self._outgoing.get()]
            while not self._outgoing.empty() and len(batch) < 256:
                batch.append(self._outgoing.get_nowait())
            while not self._closing:
                try:
                    conn = await self._connection("send")
                    payloads = []
                    for text in batch:
                        if len(text.encode()) > MAX_PAYLOAD:
                            spill_id = await conn.fetchval(_INSERT_SPILL, text)
                            text = f"{SPILL_PREFIX}{spill_id}"
                        payloads.append(text)
                    await conn.execute(_NOTIFY_MANY, CHANNEL, payloads)
                    if time.monotonic() - pruned > 60:
                        pruned = time.monotonic()
                        await conn.execute(_PRUNE_SPILL)
                    break
                except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                    self._problem = str(exc) or type(exc).__name__
                    log.warning("postgres bus: notify failed (%s); retrying", self._problem)
                    self._drop("send")
                    await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                    attempt += 1
            attempt = 0
            if self._metrics is not None:
                self._metrics.bus_published.inc(len(batch))
            for _ in batch:
                self._outgoing.task_done()

    async def _listen(self) -> None:
        attempt = 0
        connected_before = False
        while not self._closing:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._url, timeout=5)
                await conn.add_listener(CHANNEL, self._on_notify)
                if connected_before:
                    log.warning("postgres bus: listening again; reading missed messages from "
                                "the store")
                    if self._metrics is not None:
                        self._metrics.bus_reconnects.inc()
                    self._incoming.put_nowait("")  # a gap marker, in order with events
                else:
                    log.info("postgres bus: listening on %s", CHANNEL)
                connected_before = True
                self._listening.set()
                attempt = 0
                while True:  # asyncpg has no event for a dead listener: probe it
                    await asyncio.sleep(1.0)
                    await conn.fetchval("SELECT 1", timeout=5)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError,
                    TimeoutError) as exc:
                self._listening.clear()
                self._problem = str(exc) or type(exc).__name__
                log.warning("postgres bus: listener lost (%s); reconnecting", self._problem)
                await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                attempt += 1
            finally:
                if conn is not None:
                    conn.terminate()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._incoming.put_nowait(payload)

    async def _deliver_loop(self) -> None:
        # One task, so spilled events (read back from the table) keep their place.
        while True:
            payload = await self._incoming.get()
            if payload == "":
                if self._on_gap is not None:
                    self._on_gap()
                continue
            if payload.startswith(SPILL_PREFIX):
                payload = await self._read_spill(payload)
                if not payload:
                    continue
            self._deliver(payload)

    async def _read_spill(self, ref: str) -> str:
        for attempt in range(len(_BACKOFF)):
            try:
                conn = await self._connection("read")
                text = await conn.fetchval(_READ_SPILL, int(ref[len(SPILL_PREFIX):]))
                return str(text) if text is not None else ""
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, ValueError) as exc:
                log.warning("postgres bus: reading spilled event %s failed: %s", ref, exc)
                self._drop("read")
                await asyncio.sleep(_BACKOFF[attempt])
        log.error("postgres bus: spilled event %s lost; reading from the store", ref)
        if self._on_gap is not None:
            self._on_gap()
        return ""

    def _deliver(self, payload: str) -> None:
        try:
            envelope = self._codec.from_json(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("postgres bus: undecodable event dropped: %s", exc)
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
            log.exception("postgres bus: event handler failed")
