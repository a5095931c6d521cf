"""The admin part of the store on PostgreSQL (mixed into
:class:`~tidings.store.postgres.PostgresStore`); see :mod:`tidings.store.admin`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from .admin import AdminStore, AuditEntry, NewAudit
from .base import Conflict

# Plain literals, never formatted: every value travels as a bound parameter.
_UPDATE_USER = """
UPDATE users SET username = COALESCE($2, username),
                 password_hash = COALESCE($3, password_hash)
WHERE id = $1 RETURNING id"""
_DELETE_USER = """
WITH cursors AS (DELETE FROM device_cursors WHERE user_id = $1)
DELETE FROM users WHERE id = $1 RETURNING id"""  # tokens: ON DELETE CASCADE
_CLEAR_CHANNEL = "DELETE FROM publications WHERE channel = $1"

_AUDIT_ADD = """
INSERT INTO audit_log (at, actor_id, actor, action, target, details, remote)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, at, actor_id, actor, action, target, details, remote"""

_AUDIT_LIST = """
SELECT id, at, actor_id, actor, action, target, details, remote FROM audit_log
WHERE id < $1 AND ($2::text IS NULL OR action = $2::text OR starts_with(action, $2::text || '.'))
ORDER BY id DESC LIMIT $3"""

_NO_UPPER_BOUND = 2**63 - 1


class PostgresAdmin(AdminStore):
    """Admin methods of the PostgreSQL store (``_fetch``/``_fetchrow``/``_execute`` are
    the store's)."""

    _fetch: Callable[..., Awaitable[list[Any]]]
    _fetchrow: Callable[..., Awaitable[Any]]
    _execute: Callable[..., Awaitable[str]]

    async def update_user(self, user_id: int, *, username: str | None = None,
                          password_hash: str | None = None) -> bool:
        """Rename and/or set the password hash; False if no such user."""
        try:
            row = await self._fetchrow(_UPDATE_USER, user_id, username, password_hash)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"user {username!r} already exists") from exc
        return row is not None

    async def delete_user(self, user_id: int) -> bool:
        """Delete the user, its tokens and cursors; messages stay."""
        return await self._fetchrow(_DELETE_USER, user_id) is not None

    async def clear_channel(self, channel: str) -> int:
        """Remove the channel's retained publications; its offset stays."""
        status = await self._execute(_CLEAR_CHANNEL, channel)
        return int(status.rsplit(" ", 1)[-1])

    async def audit_add(self, entry: NewAudit) -> AuditEntry:
        """Append one entry."""
        row = await self._fetchrow(_AUDIT_ADD, entry.at, entry.actor_id, entry.actor,
                                   entry.action, entry.target, entry.details, entry.remote)
        return AuditEntry(*row)

    async def audit_list(self, limit: int, before: int | None = None,
                         action: str | None = None) -> list[AuditEntry]:
        """Entries newest first."""
        found = await self._fetch(_AUDIT_LIST, before or _NO_UPPER_BOUND, action, limit)
        return [AuditEntry(*r) for r in found]
