"""Token management on PostgreSQL (mixed into :class:`~tidings.store.postgres.PostgresStore`):
the methods seed 003's token API added beside create/get/touch/revoke."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from .base import Token
from .tokenrow import scopes_column, token_from_row

# Plain literals, never formatted: every value travels as a bound parameter.
_TOKENS_BY_ID = """
SELECT id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info
FROM tokens WHERE id = $1"""

_TOKENS_OF_USER = """
SELECT id, user_id, token_hash, name, device_id, created_at, expires_at, revoked_at,
       last_used_at, scopes, device_info
FROM tokens WHERE user_id = $1 ORDER BY id DESC"""

_UPDATE_TOKENS = """
UPDATE tokens SET name = $1, device_id = $2, expires_at = $3, scopes = $4, device_info = $5
WHERE id = $6 RETURNING id"""

_REVOKE_TOKENS = """
UPDATE tokens SET revoked_at = $1
WHERE id = ANY($2::bigint[]) AND revoked_at IS NULL
  AND ($3::bigint IS NULL OR user_id = $3::bigint)
RETURNING id"""

_REVOKED_SINCE = """
SELECT id FROM tokens WHERE revoked_at IS NOT NULL AND revoked_at >= $1 ORDER BY id"""


class PostgresTokens:
    """Token methods of the PostgreSQL store (``_fetch``/``_fetchrow`` are the store's)."""

    _fetch: Callable[..., Awaitable[list[Any]]]
    _fetchrow: Callable[..., Awaitable[Any]]

    async def get_token_by_id(self, token_id: int) -> Token | None:
        """The token with this id (revoked or not), or None."""
        row = await self._fetchrow(_TOKENS_BY_ID, token_id)
        return None if row is None else token_from_row(row)

    async def list_tokens(self, user_id: int) -> list[Token]:
        """Every token of a user, newest first."""
        return [token_from_row(r) for r in await self._fetch(_TOKENS_OF_USER, user_id)]

    async def update_token(self, token: Token) -> bool:
        """Store the token's editable fields; False if no such token."""
        row = await self._fetchrow(
            _UPDATE_TOKENS, token.name, token.device_id, token.expires_at,
            scopes_column(token.scopes), msgspec.json.encode(token.device_info).decode(),
            token.id)
        return row is not None

    async def revoke_tokens(self, user_id: int | None, token_ids: list[int],
                            at: int) -> list[int]:
        """Revoke the user's tokens among ``token_ids``; return those revoked now."""
        rows = await self._fetch(_REVOKE_TOKENS, at, sorted(set(token_ids)), user_id)
        return sorted(int(r[0]) for r in rows)

    async def tokens_revoked_since(self, at: int) -> list[int]:
        """Ids of tokens revoked at or after ``at``."""
        return [int(r[0]) for r in await self._fetch(_REVOKED_SINCE, at)]
