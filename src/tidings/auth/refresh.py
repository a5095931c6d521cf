"""Short-lived JWTs and the refresh tokens that renew them.

``POST /api/v1/auth/token`` gives a JWT (``jwt_ttl``) and a refresh token (``tdr_`` +
43 random characters, ``refresh_token_ttl``). A refresh token is kept like an opaque
access token — only its SHA-256, in the store's token table, named ``refresh <family>``
— so it is listed and revoked with the user's other tokens (``/api/v1/tokens``). It is
not an access token: only :meth:`RefreshTokens.refresh` takes the ``tdr_`` prefix.

Each refresh **rotates**: the token used is marked used (revoked) in the same step that
checks it, and a new one of the same family comes back with the new JWT. A used token
shown again means a copy leaked (or two clients share one): the whole family is revoked
and the caller must log in again (the rotation rule of OAuth 2.0 Security BCP §4.14).
Two refreshes racing with one token are the same case — the store's compare-and-set
lets exactly one win. JWTs already issued stay valid until their ``exp``: keep
``jwt_ttl`` short.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import msgspec

from tidings.auth.jwt_keys import JwtError, JwtKeys
from tidings.auth.tokens import AuthError, hash_token
from tidings.store.base import Store, now_ms

REFRESH_PREFIX = "tdr_"
FAMILY_PREFIX = "refresh "
"""Refresh token rows are named ``refresh <family>``; one family per log-in."""

_REUSED = "refresh_reused_at"  # device_info key marking a refresh token shown twice


def _reused() -> AuthError:
    return AuthError("refresh token already used or revoked: every token of its log-in is "
                     "revoked; log in again")


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A JWT and the refresh token that renews it (each shown once)."""

    access_token: str
    expires_at: int  # the JWT's exp, ms since the epoch
    refresh_token: str
    refresh_expires_at: int
    user_id: int


class RefreshTokens:
    """Issues JWT + refresh token pairs and rotates refresh tokens."""

    def __init__(self, store: Store, keys: JwtKeys, ttl: float) -> None:
        self._store = store
        self._keys = keys
        self._ttl_ms = int(ttl * 1000)

    @property
    def available(self) -> bool:
        """True if a signing key is configured (else nothing can be issued)."""
        return self._keys.can_issue

    async def issue(self, user_id: int, *, device_id: str | None = None,
                    scopes: tuple[str, ...] | None = None,
                    family: str | None = None) -> TokenPair:
        """A new JWT and a refresh token of ``family`` (a new family if None)."""
        try:
            access, expires_at = self._keys.issue(user_id, device_id=device_id, scopes=scopes)
        except JwtError as exc:
            raise AuthError(str(exc)) from None
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        row = await self._store.create_token(
            user_id, hash_token(refresh), name=FAMILY_PREFIX + (family or secrets.token_hex(8)),
            device_id=device_id, expires_at=now_ms() + self._ttl_ms, scopes=scopes)
        return TokenPair(access, expires_at, refresh, row.expires_at or 0, user_id)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Use ``refresh_token`` once: a new pair, or :class:`AuthError` saying why not."""
        if not refresh_token.startswith(REFRESH_PREFIX):
            raise AuthError("not a refresh token (tdr_...)")
        row = await self._store.get_token(hash_token(refresh_token))
        if row is None or not row.name.startswith(FAMILY_PREFIX):
            raise AuthError("invalid refresh token")
        now = now_ms()
        if row.revoked_at is not None or not await self._store.revoke_token(row.id, now):
            # Marked first, so that a racing winner still creating its new token sees the
            # mark once it has (see below); revoked second, to catch it if it did already.
            await self._store.update_token(msgspec.structs.replace(
                row, device_info={**row.device_info, _REUSED: str(now)}))
            await self.revoke_family(row.user_id, row.name)
            raise _reused()
        if row.expires_at is not None and row.expires_at <= now:
            raise AuthError("refresh token expired; log in again")
        if await self._store.get_user(row.user_id) is None:
            raise AuthError("unknown user")
        pair = await self.issue(row.user_id, device_id=row.device_id, scopes=row.scopes,
                                family=row.name.removeprefix(FAMILY_PREFIX))
        used = await self._store.get_token_by_id(row.id)
        if used is None or _REUSED in used.device_info:  # someone reused it meanwhile
            await self.revoke_family(row.user_id, row.name)
            raise _reused()
        return pair

    async def revoke_family(self, user_id: int, name: str) -> list[int]:
        """Revoke every live refresh token of one log-in; return their ids."""
        live = [t.id for t in await self._store.list_tokens(user_id)
                if t.name == name and t.revoked_at is None]
        return await self._store.revoke_tokens(user_id, live, now_ms()) if live else []
