"""Revoking tokens closes the live connections that use them, on every node.

A revocation through the API publishes a :class:`RevokeEvent` on the bus: each node
closes its connections authenticated with those tokens at once (close 4403). A
revocation made straight in the store (``tidings token revoke`` on the command line)
has no bus to use, so each node also asks the store every ``POLL_SECONDS`` for tokens
revoked since its last look: such connections close within about a second too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from tidings.bus.base import Bus, Event, RevokeEvent
from tidings.hub.hub import Hub
from tidings.protocol.codes import CloseCode
from tidings.store.base import Store, now_ms

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
_CLOCK_SLACK_MS = 5000  # revoked_at comes from the revoking process's clock


class Revocations:
    """Revoke tokens and close what used them."""

    def __init__(self, hub: Hub, store: Store, bus: Bus) -> None:
        self._hub = hub
        self._store = store
        self._bus = bus
        self._task: asyncio.Task[None] | None = None
        # Other holders of token-authenticated sockets (apps) are told too.
        self.listeners: list[Callable[[set[int]], object]] = []

    async def revoke(self, user_id: int | None, token_ids: list[int]) -> list[int]:
        """Revoke those of ``token_ids`` owned by ``user_id`` (any owner if None); tell
        every node. Return the ids revoked now."""
        revoked = await self._store.revoke_tokens(user_id, token_ids, now_ms())
        if revoked:
            await self._bus.publish(RevokeEvent(revoked))
        return revoked

    def on_event(self, event: Event) -> None:
        """Close this node's connections of revoked tokens."""
        if isinstance(event, RevokeEvent):
            self.close_connections(set(event.token_ids))

    def close_connections(self, token_ids: set[int]) -> int:
        """Close (4403) every connection here authenticated with one of ``token_ids``."""
        closed = 0
        for listener in self.listeners:
            listener(token_ids)
        for conn in list(self._hub.all_connections()):
            if conn.token_id in token_ids and not conn.closed:
                log.info("%s user %d: token %d revoked, closing", conn.id, conn.user_id,
                         conn.token_id)
                if conn.reader is not None:
                    conn.stop_reader(CloseCode.TOKEN_REVOKED)  # closes with a handshake
                else:
                    conn.close(CloseCode.TOKEN_REVOKED, "token_revoked")  # as stop_reader
                closed += 1
        return closed

    def start(self) -> None:
        """Start polling the store for revocations made elsewhere."""
        self._task = asyncio.get_running_loop().create_task(self._poll(), name="revocations")

    async def close(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        since = now_ms()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            started = now_ms()
            try:
                ids = await self._store.tokens_revoked_since(since - _CLOCK_SLACK_MS)
            except Exception as exc:
                log.warning("checking for revoked tokens failed: %s", exc)
                continue
            since = started
            if ids:
                self.close_connections(set(ids))
