"""The webhook sender: every node runs one; together they empty the outbox.

Each round claims up to ``BATCH`` (128) due rows with a lease (``webhook_lease``; at least
twice ``webhook_timeout``, so a live sender always finishes before its lease ends) and
POSTs them concurrently. A 2xx answer marks a row delivered; anything else counts a
try and schedules the next one ``webhook_backoff * 2**(tries-1)`` seconds later (at most
``webhook_backoff_max``); after ``webhook_max_attempts`` tries the row is ``dead`` until
replayed. A node killed mid-round leaves its rows leased: when the lease runs out any
node (itself, restarted) claims them again — at least once, so a receiver de-duplicates
by ``X-Tidings-Webhook-Id``.

The request: ``POST webhook_url`` with ``{"id", "event", "created_at", "attempt",
"data"}``, headers ``X-Tidings-Webhook-Id``, ``X-Tidings-Event`` and, with
``webhook_secret``, ``X-Tidings-Signature`` (hooks/signing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
import msgspec

from tidings.config import Settings
from tidings.hooks.signing import SIGNATURE_HEADER, sign
from tidings.store.base import now_ms
from tidings.store.outbox import Outbox, OutboxRow

log = logging.getLogger(__name__)

BATCH = 128
"""Rows one round claims and sends at once (aiohttp keeps up to 100 connections)."""
KEEP_DELIVERED_MS = 7 * 86400 * 1000
"""Delivered rows are kept this long (for the admin list), then purged."""
PURGE_EVERY = 3600.0


class _Body(msgspec.Struct):
    id: int
    event: str
    created_at: int
    attempt: int
    data: msgspec.Raw


class WebhookSender:
    """Sends this node's share of the outbox to ``webhook_url``."""

    def __init__(self, outbox: Outbox, settings: Settings, owner: str) -> None:
        self.outbox = outbox
        self.url = settings.webhook_url
        self.secret = settings.webhook_secret
        self.owner = owner
        self.timeout = settings.webhook_timeout
        self.lease_ms = int(max(settings.webhook_lease, 2 * settings.webhook_timeout) * 1000)
        self.max_attempts = settings.webhook_max_attempts
        self.backoff = settings.webhook_backoff
        self.backoff_max = settings.webhook_backoff_max
        self.poll = settings.webhook_poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._purged_at = 0.0

    def start(self) -> None:
        """Start sending."""
        self._session = aiohttp.ClientSession()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="webhooks")

    def notify(self) -> None:
        """Look at the outbox now (something was just added)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop; rows being sent keep their lease and are sent again after it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.round()
            except Exception as exc:  # the store is down: try again later
                log.warning("webhook outbox unavailable: %s", exc)
                sent = 0
            if sent < BATCH:
                # asyncio.timeout, not wait_for: on Python 3.11 a cancel that lands while
                # wait_for's timeout is cancelling its inner wait is lost, and close()
                # then waited forever on this loop (seen once in CI, poll 0.1 s).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll):
                        await self._wake.wait()
                self._wake.clear()

    async def round(self) -> int:
        """Claim due rows and send them; returns how many were claimed."""
        if time.monotonic() - self._purged_at > PURGE_EVERY:
            self._purged_at = time.monotonic()
            await self.outbox.outbox_purge(now_ms() - KEEP_DELIVERED_MS)
        rows = await self.outbox.outbox_claim(self.owner, now_ms(), self.lease_ms, BATCH)
        if rows:
            sent = await asyncio.gather(*(self._send(row) for row in rows))
            # One transaction for the round's successes: a write per webhook would
            # queue behind (and slow) the chat commits on SQLite's one writer.
            await self.outbox.outbox_delivered([r.id for r, ok in zip(rows, sent, strict=True)
                                                if ok], self.owner, now_ms())
        return len(rows)

    def delay(self, attempt: int) -> float:
        """Seconds before the try after try number ``attempt``."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.backoff_max))

    async def _send(self, row: OutboxRow) -> bool:
        attempt = row.attempts + 1
        body = msgspec.json.encode(_Body(row.id, row.event, row.created_at, attempt,
                                         msgspec.Raw(row.data.encode())))
        headers = {"Content-Type": "application/json", "X-Tidings-Webhook-Id": str(row.id),
                   "X-Tidings-Event": row.event}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        error = ""
        assert self._session is not None
        try:
            async with self._session.post(
                    self.url, data=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                if not 200 <= response.status < 300:
                    error = f"HTTP {response.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__} {exc}".strip()
        if not error:
            return True
        next_at = now_ms() + int(self.delay(attempt) * 1000)
        if await self.outbox.outbox_failed(row.id, self.owner, error, next_at,
                                           self.max_attempts):
            log.warning("webhook %d (%s) is dead after %d tries: %s", row.id, row.event,
                        attempt, error)
        return False
