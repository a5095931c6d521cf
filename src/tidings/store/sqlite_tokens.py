"""Access tokens on SQLite (mixed into :class:`~tidings.store.sqlite.SqliteStore`): the
create/get/touch/revoke the gateway needs and seed 003's token API beside them."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from .base import Token, now_ms
from .sqlite_helpers import integrity_error, one, rows, transaction
from .tokenrow import scopes_column, token_from_row

# Plain literals, never formatted: every value travels as a bound parameter.
_INSERT_TOKENS = """
INSERT INTO tokens (user_id, token_hash, name, device_id, created_at, expires_at, scopes,
                    device_info)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
RETURNING id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info"""

_TOKENS_BY_HASH = """
SELECT id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info
FROM tokens WHERE token_hash = ?"""

_TOKENS_BY_ID = """
SELECT id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info
FROM tokens WHERE id = ?"""

_TOKENS_OF_USER = """
SELECT id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info
FROM tokens WHERE user_id = ? ORDER BY id DESC"""

_TOUCH_TOKENS = "UPDATE tokens SET last_used_at = ? WHERE id = ?"

_REVOKE_ONE = """
UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id"""

_UPDATE_TOKENS = """
UPDATE tokens SET name = ?, device_id = ?, expires_at = ?, scopes = ?, device_info = ?
WHERE id = ? RETURNING id"""

_REVOKE_TOKENS = """
UPDATE tokens SET revoked_at = ?1
WHERE id = ?2 AND revoked_at IS NULL AND (?3 IS NULL OR user_id = ?3) RETURNING id"""

_REVOKED_SINCE = """
SELECT id FROM tokens WHERE revoked_at IS NOT NULL AND revoked_at >= ? ORDER BY id"""


class SqliteTokens:
    """Token methods of the SQLite store; ``_run`` is the store's worker-thread call,
    ``_point`` its lookup by key."""

    _run: Callable[[Callable[[sqlite3.Connection], Any]], Any]
    _point: Callable[[str, tuple[Any, ...]], Awaitable[Any | None]]

    async def create_token(self, user_id: int, token_hash: str, *, name: str = "",
                           device_id: str | None = None, expires_at: int | None = None,
                           scopes: tuple[str, ...] | None = None,
                           device_info: dict[str, str] | None = None) -> Token:
        """Store a new access token (its hash only)."""
        params = (user_id, token_hash, name, device_id, now_ms(), expires_at,
                  scopes_column(scopes), msgspec.json.encode(device_info or {}).decode())

        def job(conn: sqlite3.Connection) -> Token:
            try:
                return token_from_row(rows(conn, _INSERT_TOKENS, params)[0])
            except sqlite3.IntegrityError as exc:
                raise integrity_error(exc, "token") from exc
        token: Token = await self._run(job)
        return token

    async def get_token(self, token_hash: str) -> Token | None:
        """The token with this hash (revoked or not), or None."""
        row = await self._point(_TOKENS_BY_HASH, (token_hash,))
        return None if row is None else token_from_row(row)

    async def touch_token(self, token_id: int, at: int) -> None:
        """Record that the token was used at ``at``."""
        await self._run(lambda c: rows(c, _TOUCH_TOKENS, (at, token_id)))

    async def touch_tokens(self, uses: list[tuple[int, int]]) -> None:
        """Record several uses in one transaction (one fsync, not one per token)."""
        params = [(at, token_id) for token_id, at in uses]
        if not params:
            return

        def job(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(_TOUCH_TOKENS, params)
        await self._run(job)

    async def revoke_token(self, token_id: int, at: int) -> bool:
        """Revoke a token; False if it was unknown or already revoked."""
        row = await self._run(lambda c: one(c, _REVOKE_ONE, (at, token_id)))
        return row is not None

    async def get_token_by_id(self, token_id: int) -> Token | None:
        """The token with this id (revoked or not), or None."""
        row = await self._run(lambda c: one(c, _TOKENS_BY_ID, (token_id,)))
        return None if row is None else token_from_row(row)

    async def list_tokens(self, user_id: int) -> list[Token]:
        """Every token of a user, newest first."""
        found = await self._run(lambda c: rows(c, _TOKENS_OF_USER, (user_id,)))
        return [token_from_row(r) for r in found]

    async def update_token(self, token: Token) -> bool:
        """Store the token's editable fields; False if no such token."""
        params = (token.name, token.device_id, token.expires_at, scopes_column(token.scopes),
                  msgspec.json.encode(token.device_info).decode(), token.id)
        return await self._run(lambda c: one(c, _UPDATE_TOKENS, params)) is not None

    async def revoke_tokens(self, user_id: int | None, token_ids: list[int],
                            at: int) -> list[int]:
        """Revoke the user's tokens among ``token_ids``; return those revoked now."""
        ids = sorted(set(token_ids))

        def job(conn: sqlite3.Connection) -> list[int]:
            done: list[int] = []
            with transaction(conn):
                for token_id in ids:
                    if one(conn, _REVOKE_TOKENS, (at, token_id, user_id)) is not None:
                        done.append(token_id)
            return done
        result: list[int] = await self._run(job)
        return result

    async def tokens_revoked_since(self, at: int) -> list[int]:
        """Ids of tokens revoked at or after ``at``."""
        found = await self._run(lambda c: rows(c, _REVOKED_SINCE, (at,)))
        return [int(r[0]) for r in found]
