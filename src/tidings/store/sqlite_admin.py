"""The admin part of the store on SQLite (mixed into
:class:`~tidings.store.sqlite.SqliteStore`); see :mod:`tidings.store.admin`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from .admin import AdminStore, AuditEntry, NewAudit
from .sqlite_helpers import integrity_error, one, rows, transaction

# Plain literals, never formatted: every value travels as a bound parameter.
_RENAME = "UPDATE users SET username = ? WHERE id = ? RETURNING id"
_SET_HASH = "UPDATE users SET password_hash = ? WHERE id = ? RETURNING id"
_DELETE_CURSORS = "DELETE FROM device_cursors WHERE user_id = ?"
_DELETE_USER = "DELETE FROM users WHERE id = ? RETURNING id"  # tokens: ON DELETE CASCADE
_CLEAR_CHANNEL = "DELETE FROM publications WHERE channel = ?"

_AUDIT_ADD = """
INSERT INTO audit_log (at, actor_id, actor, action, target, details, remote)
VALUES (?, ?, ?, ?, ?, ?, ?)
RETURNING id, at, actor_id, actor, action, target, details, remote"""

_AUDIT_LIST = """
SELECT id, at, actor_id, actor, action, target, details, remote FROM audit_log
WHERE id < ?1 AND (?2 IS NULL OR action = ?2 OR substr(action, 1, length(?2) + 1) = ?2 || '.')
ORDER BY id DESC LIMIT ?3"""

_NO_UPPER_BOUND = 2**63 - 1


class SqliteAdmin(AdminStore):
    """Admin methods of the SQLite store; ``_run`` is the store's worker-thread call."""

    _run: Callable[[Callable[[sqlite3.Connection], Any]], Any]

    async def update_user(self, user_id: int, *, username: str | None = None,
                          password_hash: str | None = None) -> bool:
        """Rename and/or set the password hash; False if no such user."""
        def job(conn: sqlite3.Connection) -> bool:
            found = one(conn, "SELECT id FROM users WHERE id = ?", (user_id,)) is not None
            if not found:
                return False
            with transaction(conn):
                try:
                    if username is not None:
                        rows(conn, _RENAME, (username, user_id))
                except sqlite3.IntegrityError as exc:
                    raise integrity_error(exc, f"user {username!r}") from exc
                if password_hash is not None:
                    rows(conn, _SET_HASH, (password_hash, user_id))
            return True
        result: bool = await self._run(job)
        return result

    async def delete_user(self, user_id: int) -> bool:
        """Delete the user, its tokens and cursors; messages stay."""
        def job(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                conn.execute(_DELETE_CURSORS, (user_id,))
                return bool(rows(conn, _DELETE_USER, (user_id,)))
        result: bool = await self._run(job)
        return result

    async def clear_channel(self, channel: str) -> int:
        """Remove the channel's retained publications; its offset stays."""
        def job(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return conn.execute(_CLEAR_CHANNEL, (channel,)).rowcount
        result: int = await self._run(job)
        return result

    async def audit_add(self, entry: NewAudit) -> AuditEntry:
        """Append one entry."""
        def job(conn: sqlite3.Connection) -> AuditEntry:
            with transaction(conn):
                return AuditEntry(*rows(conn, _AUDIT_ADD, (
                    entry.at, entry.actor_id, entry.actor, entry.action, entry.target,
                    entry.details, entry.remote))[0])
        result: AuditEntry = await self._run(job)
        return result

    async def audit_list(self, limit: int, before: int | None = None,
                         action: str | None = None) -> list[AuditEntry]:
        """Entries newest first."""
        found = await self._run(lambda c: rows(c, _AUDIT_LIST, (
            before or _NO_UPPER_BOUND, action, limit)))
        return [AuditEntry(*r) for r in found]
