"""Token management on SQLite (mixed into :class:`~tidings.store.sqlite.SqliteStore`):
the methods seed 003's token API added beside create/get/touch/revoke."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import msgspec

from .base import Token
from .tokenrow import scopes_column, token_from_row

# Plain literals, never formatted: every value travels as a bound parameter.
_TOKENS_BY_ID = """
SELECT id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info
FROM tokens WHERE id = ?"""

_TOKENS_OF_USER = """
SELECT id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info
FROM tokens WHERE user_id = ? ORDER BY id DESC"""

_UPDATE_TOKENS = """
UPDATE tokens SET name = ?, device_id = ?, expires_at = ?, scopes = ?, device_info = ?
WHERE id = ? RETURNING id"""

_REVOKE_TOKENS = """
UPDATE tokens SET revoked_at = ?1
WHERE id = ?2 AND revoked_at IS NULL AND (?3 IS NULL OR user_id = ?3) RETURNING id"""

_REVOKED_SINCE = """
SELECT id FROM tokens WHERE revoked_at IS NOT NULL AND revoked_at >= ? ORDER BY id"""


def _all(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    # Drained to the end: a RETURNING statement only finishes once stepped through.
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _first(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any | None:
    rows = _all(conn, sql, params)
    return rows[0] if rows else None


class SqliteTokens:
    """Token methods of the SQLite store; ``_run`` is the store's worker-thread call."""

    _run: Callable[[Callable[[sqlite3.Connection], Any]], Any]

    async def get_token_by_id(self, token_id: int) -> Token | None:
        """The token with this id (revoked or not), or None."""
        row = await self._run(lambda c: _first(c, _TOKENS_BY_ID, (token_id,)))
        return None if row is None else token_from_row(row)

    async def list_tokens(self, user_id: int) -> list[Token]:
        """Every token of a user, newest first."""
        rows = await self._run(lambda c: _all(c, _TOKENS_OF_USER, (user_id,)))
        return [token_from_row(r) for r in rows]

    async def update_token(self, token: Token) -> bool:
        """Store the token's editable fields; False if no such token."""
        params = (token.name, token.device_id, token.expires_at, scopes_column(token.scopes),
                  msgspec.json.encode(token.device_info).decode(), token.id)
        return await self._run(lambda c: _first(c, _UPDATE_TOKENS, params)) is not None

    async def revoke_tokens(self, user_id: int | None, token_ids: list[int],
                            at: int) -> list[int]:
        """Revoke the user's tokens among ``token_ids``; return those revoked now."""
        ids = sorted(set(token_ids))

        def job(conn: sqlite3.Connection) -> list[int]:
            done: list[int] = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                for token_id in ids:
                    if _first(conn, _REVOKE_TOKENS, (at, token_id, user_id)) is not None:
                        done.append(token_id)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return done
        result: list[int] = await self._run(job)
        return result

    async def tokens_revoked_since(self, at: int) -> list[int]:
        """Ids of tokens revoked at or after ``at``."""
        rows = await self._run(lambda c: _all(c, _REVOKED_SINCE, (at,)))
        return [int(r[0]) for r in rows]
