"""The webhook outbox on PostgreSQL (mixed into
:class:`~tidings.store.postgres.PostgresStore`); see :mod:`tidings.store.outbox`.
Nodes claim with ``FOR UPDATE SKIP LOCKED``: two nodes never lease the same row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .base import now_ms
from .outbox import NewEvent, Outbox, OutboxRow

# Plain literals, never formatted: every value travels as a bound parameter.
INSERT_EVENTS = """
INSERT INTO webhook_outbox (event, data, created_at, next_at)
SELECT e, d, $3, $3 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(e, d, n)
ORDER BY n"""

_CLAIM = """
UPDATE webhook_outbox SET lease_owner = $1, lease_until = $2
WHERE id IN (SELECT id FROM webhook_outbox
             WHERE state = 'pending' AND next_at <= $3 AND lease_until <= $3
             ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING id, event, data, created_at, state, attempts, next_at, last_error, delivered_at"""

_DELIVERED = """
UPDATE webhook_outbox SET state = 'delivered', delivered_at = $1, attempts = attempts + 1,
                          lease_owner = '', lease_until = 0
WHERE id = ANY($2::bigint[]) AND lease_owner = $3 AND state = 'pending'"""

_FAILED = """
UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $1, next_at = $2,
                          lease_owner = '', lease_until = 0,
                          state = CASE WHEN attempts + 1 >= $3 THEN 'dead' ELSE 'pending' END
WHERE id = $4 AND lease_owner = $5 AND state = 'pending'
RETURNING state"""

_LIST = """
SELECT id, event, data, created_at, state, attempts, next_at, last_error, delivered_at
FROM webhook_outbox WHERE ($1::text IS NULL OR state = $1) AND id < $2
ORDER BY id DESC LIMIT $3"""

_REPLAY_IDS = """
UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_at = $1, lease_owner = '',
                          lease_until = 0, last_error = '', delivered_at = NULL
WHERE id = ANY($2::bigint[]) AND state <> 'pending'"""

_REPLAY_DEAD = """
UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_at = $1, lease_owner = '',
                          lease_until = 0, last_error = '', delivered_at = NULL
WHERE state = 'dead'"""

_PURGE = "DELETE FROM webhook_outbox WHERE state = 'delivered' AND delivered_at < $1"

_NO_UPPER_BOUND = 2**63 - 1


def _count(status: str) -> int:
    """Rows touched, from asyncpg's status string (``UPDATE 3``)."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresOutbox(Outbox):
    """Outbox methods; the host class provides ``_fetch``, ``_fetchrow`` and
    ``_execute``."""

    _fetch: Callable[..., Awaitable[list[Any]]]
    _fetchrow: Callable[..., Awaitable[Any]]
    _execute: Callable[..., Awaitable[str]]

    async def outbox_add(self, events: list[NewEvent]) -> None:
        """Add events (one statement), due now."""
        if events:
            await self._execute(INSERT_EVENTS, [e for e, _ in events], [d for _, d in events],
                                now_ms())

    async def outbox_claim(self, owner: str, now: int, lease_ms: int,
                           limit: int) -> list[OutboxRow]:
        """Lease due rows to ``owner`` (see :class:`Outbox`)."""
        found = await self._fetch(_CLAIM, owner, now + lease_ms, now, limit)
        return sorted((OutboxRow(*r) for r in found), key=lambda r: r.id)

    async def outbox_delivered(self, row_ids: list[int], owner: str, now: int) -> None:
        """Mark held rows delivered."""
        if row_ids:
            await self._execute(_DELIVERED, now, row_ids, owner)

    async def outbox_failed(self, row_id: int, owner: str, error: str, next_at: int,
                            max_attempts: int) -> bool:
        """Count a failed try; True if the row is dead now."""
        row = await self._fetchrow(_FAILED, error[:500], next_at, max_attempts, row_id, owner)
        return row is not None and row[0] == "dead"

    async def outbox_list(self, state: str | None, limit: int,
                          before_id: int | None = None) -> list[OutboxRow]:
        """Rows, newest first."""
        bound = _NO_UPPER_BOUND if before_id is None else before_id
        return [OutboxRow(*r) for r in await self._fetch(_LIST, state, bound, limit)]

    async def outbox_replay(self, ids: list[int] | None, now: int) -> int:
        """Make rows pending again; how many."""
        if ids is None:
            return _count(await self._execute(_REPLAY_DEAD, now))
        return _count(await self._execute(_REPLAY_IDS, now, ids))

    async def outbox_purge(self, delivered_before: int) -> int:
        """Delete rows delivered before this time."""
        return _count(await self._execute(_PURGE, delivered_before))
