"""Gap-free live delivery when chat events come from several nodes.

On one node the bus hands chat events over in id order, none missing, and the
hub pushes each to the connections whose ``last_pushed_id`` is below it. On a
cluster bus, node A may commit message 10 and node B message 11, and B's event
may arrive first: pushing 11 would move ``last_pushed_id`` past 10, and 10 would
never be pushed live (and a device that acks 11 moves its cursor past 10 for good).

The store is the truth, and commit order equals id order there (an advisory lock
on PostgreSQL, a Lua script on Redis). So an event is pushed as it is only when
this node has seen *every* lower id above the store's last id when the node began
listening; otherwise it is only a hint, and each connection it concerns reads its
stream above ``last_pushed_id`` from the store. That read cannot miss a message:
if 11 is committed, so is 10.

Ids are contiguous in normal operation (appends never burn ids on duplicates),
so almost every event takes the direct path. An id that never shows up — a
rolled-back batch, an event lost while a node was cut off from the bus — is
declared missing after ``gap_timeout``; every local connection then reads from
the store once, so a message whose event was lost is still delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from tidings.gateway.connection import Connection
from tidings.metrics import Metrics
from tidings.protocol.codes import CloseCode
from tidings.store.base import Store, StoredMessage

log = logging.getLogger(__name__)

PushOne = Callable[[Connection, StoredMessage], bool]


class GapFill:
    """Tracks which message ids this node has seen, and reads from the store for
    connections whose next message may not have arrived."""

    def __init__(self, store: Store, metrics: Metrics, push: PushOne, *, page_size: int = 100,
                 gap_timeout: float = 1.0) -> None:
        self._store = store
        self._metrics = metrics
        self._push = push
        self._page_size = page_size
        self._gap_timeout = gap_timeout
        self._watermark: int | None = None  # every id <= this has been seen (or given up)
        self._ahead: set[int] = set()  # ids seen above watermark + 1
        self._timer: asyncio.TimerHandle | None = None
        self._pulling: dict[str, asyncio.Task[None]] = {}
        self._wanted: set[str] = set()
        self._all_connections: Callable[[], Iterable[Connection]] = lambda: ()

    def attach(self, all_connections: Callable[[], Iterable[Connection]]) -> None:
        """Tell the gap fill how to find every local connection (for a full re-read)."""
        self._all_connections = all_connections

    async def start(self) -> None:
        """Begin where the store's log ends; call once the bus receives."""
        self.begin_at(await self._store.last_message_id())

    def begin_at(self, last_id: int) -> None:
        """Every id up to ``last_id`` is committed and needs no event here: this node's
        connections read it from the store as they catch up. Above it, every id must
        arrive as an event (or be given up after ``gap_timeout``).

        Not the first event's id: nodes publish after their own commits, so the
        first event here may be 2 while 1's is still on its way, and pushing 3 as
        it is would skip 1 for good (a ledger loss in tests/chaos/test_partition.py)."""
        self._ahead = {i for i in self._ahead if i > last_id}
        self._advance(max(last_id, self._watermark or 0))

    def in_order(self, message_id: int) -> bool:
        """Record that an event for ``message_id`` arrived; True if every lower id has
        been seen, so the event may be pushed as it is."""
        mark = self._watermark
        if mark is None or message_id != mark + 1:
            # Before begin_at only a hint, and the timer gives up on the start if the
            # store never answered.
            if mark is None or message_id > mark + 1:
                self._ahead.add(message_id)
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(
                        self._gap_timeout, self._give_up_waiting)
            return False
        self._advance(message_id)
        return True

    def _advance(self, mark: int) -> None:
        while mark + 1 in self._ahead:
            mark += 1
            self._ahead.discard(mark)
        self._watermark = mark
        if not self._ahead and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _give_up_waiting(self) -> None:
        self._timer = None
        if not self._ahead:
            return
        lowest = min(self._ahead)
        log.info("message ids %s..%s never arrived on the bus; re-reading from the store",
                 (self._watermark or 0) + 1, lowest - 1)
        self._ahead.discard(lowest)
        self._advance(lowest)
        if self._ahead:
            self._timer = asyncio.get_running_loop().call_later(
                self._gap_timeout, self._give_up_waiting)
        self.refill_all()

    def refill_all(self) -> None:
        """Every local connection reads what it may have missed (after the bus was cut)."""
        for conn in list(self._all_connections()):
            self.refill(conn)

    def busy(self, conn: Connection) -> bool:
        """True while the connection reads from the store: direct pushes must wait."""
        return conn.id in self._pulling

    def refill(self, conn: Connection) -> None:
        """Push the connection's stream above ``last_pushed_id`` from the store (once
        it has caught up; coalesced while a read is in flight)."""
        if conn.closed:
            return
        self._wanted.add(conn.id)
        if conn.catching_up or conn.id in self._pulling:
            return  # finish_catch_up, or the running read, picks it up
        task = asyncio.get_running_loop().create_task(self._read(conn))
        self._pulling[conn.id] = task

    def wanted(self, conn: Connection) -> bool:
        """True if a read was asked for while the connection was catching up."""
        return conn.id in self._wanted

    async def _read(self, conn: Connection) -> None:
        try:
            while conn.id in self._wanted and not conn.closed:
                self._wanted.discard(conn.id)
                self._metrics.gap_fills.inc()
                rows = await self._store.messages_for_device(
                    conn.user_id, conn.device_id, conn.last_pushed_id, self._page_size)
                for message in rows:
                    if message.id > conn.last_pushed_id and not self._push(conn, message):
                        return  # closed as a slow consumer: its next connection recovers
                if len(rows) == self._page_size:
                    self._wanted.add(conn.id)
        except Exception:
            log.exception("%s: reading missed messages failed; closing so it recovers",
                          conn.id)
            conn.close(CloseCode.INTERNAL_ERROR, "live delivery interrupted")
        finally:
            self._wanted.discard(conn.id)
            self._pulling.pop(conn.id, None)

    async def close(self) -> None:
        """Stop the timer and the reads in flight."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._pulling.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
