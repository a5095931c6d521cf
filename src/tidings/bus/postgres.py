"""The PostgreSQL bus: LISTEN/NOTIFY on one channel.

NOTIFY payloads are text and at most 8000 bytes. An event whose JSON is longer
is written to the table ``tidings_bus_spill`` and the notification carries only
``@<row id>``; every node reads the row back (rows are pruned after ten
minutes). The table is unlogged (it holds nothing worth a WAL write) and created
by the bus itself, so the bus works beside any store.

Events are sent by one task, in order, several per statement (bus/queued.py);
PostgreSQL delivers notifications in commit order. The listening connection is checked
every second (a partitioned network goes silent rather than closing it: a probe
unanswered within ``LINK_TIMEOUT`` counts as a lost link, and so does a send); after
it is lost and made again the bus calls ``on_gap``, since NOTIFY keeps nothing for
an absent listener.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import asyncpg
import msgspec

from tidings.bus.queued import BACKOFF, LINK_TIMEOUT, QueuedBus, backoff
from tidings.bus.wire import Envelope
from tidings.metrics import Metrics

log = logging.getLogger(__name__)

CHANNEL = "tidings_bus"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes including the channel name
SPILL_PREFIX = "@"
_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError)

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


class PostgresBus(QueuedBus[str]):
    """Events through PostgreSQL notifications shared by every node."""

    name = "postgres bus"
    retry_on = _ERRORS

    def __init__(self, url: str, *, node_id: str, metrics: Metrics | None = None,
                 queue_size: int = 100_000) -> None:
        super().__init__(node_id=node_id, metrics=metrics, queue_size=queue_size)
        self._url = url
        self._incoming: asyncio.Queue[str] = asyncio.Queue()
        self._pruned = 0.0
        # Two tasks talk to PostgreSQL besides the listener, each on its own connection.
        self._conns: dict[str, Any] = {"send": None, "read": None}

    def _encode(self, envelope: Envelope) -> str:
        return self._codec.to_json(envelope)

    def _receivers(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {"pg-bus-listen": self._listen(), "pg-bus-deliver": self._deliver_loop()}

    async def _release(self) -> None:
        self._drop("send")
        self._drop("read")

    def _sender_failed(self) -> None:
        self._drop("send")

    async def _connection(self, role: str) -> Any:
        conn = self._conns[role]
        if conn is None or conn.is_closed():
            conn = self._conns[role] = await asyncpg.connect(self._url, timeout=LINK_TIMEOUT)
            await conn.execute(_CREATE_SPILL, timeout=LINK_TIMEOUT)
        return conn

    def _drop(self, role: str) -> None:
        conn, self._conns[role] = self._conns[role], None
        if conn is not None:
            conn.terminate()

    async def _send_batch(self, batch: list[str]) -> None:
        conn = await self._connection("send")
        payloads = []
        for text in batch:
            if len(text.encode()) > MAX_PAYLOAD:
                spill_id = await conn.fetchval(_INSERT_SPILL, text, timeout=LINK_TIMEOUT)
                text = f"{SPILL_PREFIX}{spill_id}"
            payloads.append(text)
        await conn.execute(_NOTIFY_MANY, CHANNEL, payloads, timeout=LINK_TIMEOUT)
        if time.monotonic() - self._pruned > 60:
            self._pruned = time.monotonic()
            await conn.execute(_PRUNE_SPILL, timeout=LINK_TIMEOUT)

    async def _listen(self) -> None:
        attempt = 0
        connected_before = False
        while not self._closing:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._url, timeout=LINK_TIMEOUT)
                await asyncio.wait_for(conn.add_listener(CHANNEL, self._on_notify),
                                       LINK_TIMEOUT)
                if connected_before:
                    self._reconnected()
                    self._incoming.put_nowait("")  # a gap marker, in order with events
                else:
                    log.info("postgres bus: listening on %s", CHANNEL)
                connected_before = True
                self._ready.set()
                attempt = 0
                while True:  # asyncpg has no event for a dead listener: probe it
                    await asyncio.sleep(1.0)
                    await conn.fetchval("SELECT 1", timeout=LINK_TIMEOUT)
            except _ERRORS as exc:
                self._ready.clear()
                self._problem = str(exc) or type(exc).__name__
                log.warning("postgres bus: listener lost (%s); reconnecting", self._problem)
                await backoff(attempt)
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
                self._gap()
                continue
            if payload.startswith(SPILL_PREFIX):
                payload = await self._read_spill(payload)
                if not payload:
                    continue
            try:
                envelope = self._codec.from_json(payload)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._undecodable(exc)
                continue
            self._dispatch(envelope)

    async def _read_spill(self, ref: str) -> str:
        for attempt in range(len(BACKOFF)):
            try:
                conn = await self._connection("read")
                text = await conn.fetchval(_READ_SPILL, int(ref[len(SPILL_PREFIX):]),
                                           timeout=LINK_TIMEOUT)
                return str(text) if text is not None else ""
            except (*_ERRORS, ValueError) as exc:
                log.warning("postgres bus: reading spilled event %s failed: %s", ref, exc)
                self._drop("read")
                await backoff(attempt)
        log.error("postgres bus: spilled event %s lost; reading from the store", ref)
        self._gap()
        return ""
