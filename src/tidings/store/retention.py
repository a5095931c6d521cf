"""The background job that enforces ``stream_retention`` on a store that keeps
messages for a limited time (the Redis store, seed 004: 30 days).

Every node runs it every ``stream_trim_interval`` seconds; trimming is idempotent,
so several nodes doing it at once only repeat each other's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)


class Trimmable(Protocol):
    """A store with a retention limit."""

    async def trim_messages(self, cutoff_ms: int) -> int:
        """Remove messages stored before ``cutoff_ms``; return how many entries went."""


class RetentionJob:
    """Trim ``store`` to ``retention`` seconds every ``interval`` seconds."""

    def __init__(self, store: Trimmable, retention: float, interval: float) -> None:
        self.store = store
        self.retention = retention
        self.interval = max(0.05, interval)  # 0 would spin
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (its first pass runs at once)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="retention")

    async def run_once(self) -> int:
        """One pass: trim what is older than the retention now."""
        cutoff = int((time.time() - self.retention) * 1000)
        return await self.store.trim_messages(cutoff)

    async def _run(self) -> None:
        while True:
            try:
                trimmed = await self.run_once()
                if trimmed:
                    log.info("retention: trimmed %d stream entries older than %g s",
                             trimmed, self.retention)
            except Exception:  # Redis may be away for a while: try again next time
                log.exception("retention: trimming failed")
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
