"""The PostgreSQL change feed (seed §4.1): one connection per node LISTENs on
``tidings_desks``, which the desk tables' triggers NOTIFY on commit. Every node
listens, so a change made through any node, or by any other program straight in
the database, reaches every node's clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from tidings.bus.base import DeskChangeEvent

log = logging.getLogger(__name__)

CHANNEL = "tidings_desks"


class ChangeFeed:
    """LISTEN with reconnects; ``on_change`` gets each decoded notification,
    ``on_gap`` is called after a reconnect (notifications may have been missed)."""

    def __init__(self, url: str, on_change: Callable[[DeskChangeEvent], None],
                 on_gap: Callable[[], None]) -> None:
        self._url = url
        self._on_change = on_change
        self._on_gap = on_gap
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.connected = False
        self.received = 0
        self.malformed = 0

    async def start(self, wait_seconds: float = 10.0) -> None:
        """Connect and LISTEN; return once listening (or after ``wait_seconds``, retrying on)."""
        self._task = asyncio.create_task(self._run(), name="desks-change-feed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait_seconds)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = msgspec.json.decode(payload, type=DeskChangeEvent)
        except msgspec.DecodeError:  # a NOTIFY on our channel from some other program
            self.malformed += 1
            log.warning("ignored a malformed %s notification: %.200r", CHANNEL, payload)
            return
        self.received += 1
        self._on_change(change)

    async def _run(self) -> None:
        import asyncpg

        delay = 0.2
        first = True
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._url)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                self.connected = True
                self._listening.set()
                if not first:
                    log.info("change feed listening again")
                    self._on_gap()
                first, delay = False, 0.2
                # Poll too: a connection cut by the network may never report termination.
                while not lost.is_set():
                    # asyncio.timeout: wait_for can swallow a cancel on Python 3.11
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5.0):
                            await lost.wait()
                    if not lost.is_set():
                        await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change feed: %s; retrying in %.1fs", exc, delay)
            finally:
                self.connected = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
