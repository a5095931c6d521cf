"""Who is connecting: opaque access tokens and JWTs.

Opaque tokens (``tdg_`` + 43 random URL-safe characters) are issued by
``/api/v1/auth/login`` and ``tidings token create``; only their SHA-256 is
stored (they carry 256 random bits, so a slow hash adds nothing). A JWT is
accepted when a secret, a key or a JWKS URL is configured (jwt_keys.py); its
``sub`` is the user id and ``exp`` is required. Every identity carries when its
credential expires: the sockets close a connection whose credential runs out
without a refresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tidings.auth.jwt_keys import JwtError, JwtKeys
from tidings.config import Settings
from tidings.store.base import Store, Token, now_ms

TOKEN_PREFIX = "tdg_"  # noqa: S105 - a prefix, not a secret
TOUCH_INTERVAL_MS = 30_000
"""``last_used_at`` is recorded at most this often per token (milliseconds)."""


class AuthError(Exception):
    """The credentials do not identify a user; the message says why."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user, and the device the token was issued for, if any."""

    user_id: int
    device_id: str | None = None
    token_id: int | None = None
    scopes: tuple[str, ...] | None = None  # None: every right of the user (see channels/access)
    expires_at: int | None = None  # when the credential expires, ms since the epoch


def hash_token(token: str) -> str:
    """The stored form of an opaque token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh opaque access token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class Authenticator:
    """Issues opaque tokens and verifies opaque tokens and JWTs."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._ttl_ms = int(settings.token_ttl * 1000)
        self.jwt = JwtKeys(settings)  # ValueError in words if a key file is unusable
        # Uses to record (token id -> when), written together: see _touch.
        self._touches: dict[int, int] = {}
        self._touched: asyncio.Future[None] | None = None  # resolves once those are stored
        self._toucher: asyncio.Task[None] | None = None
        self._touch_loop: asyncio.AbstractEventLoop | None = None
        #: Awaited with every identity verified (e.g. the apps' user mirror on Redis).
        self.on_verified: list[Callable[[Identity], Awaitable[None]]] = []

    async def issue(self, user_id: int, *, name: str = "", device_id: str | None = None,
                    ttl_ms: int | None = None, scopes: tuple[str, ...] | None = None,
                    device_info: dict[str, str] | None = None) -> tuple[str, int]:
        """Create an opaque token; return it (shown once) and its expiry in ms."""
        token, row = await self.issue_row(user_id, name=name, device_id=device_id,
                                          ttl_ms=ttl_ms, scopes=scopes, device_info=device_info)
        return token, row.expires_at or 0

    async def issue_row(self, user_id: int, *, name: str = "", device_id: str | None = None,
                        ttl_ms: int | None = None, scopes: tuple[str, ...] | None = None,
                        device_info: dict[str, str] | None = None) -> tuple[str, Token]:
        """Create an opaque token; return it (shown once) and its stored row."""
        token = new_token()
        expires_at = now_ms() + (self._ttl_ms if ttl_ms is None else ttl_ms)
        row = await self._store.create_token(user_id, hash_token(token), name=name,
                                             device_id=device_id, expires_at=expires_at,
                                             scopes=scopes, device_info=device_info)
        return token, row

    def seconds_left(self, identity: Identity) -> float | None:
        """Seconds until a connection of ``identity`` must close (its credential's expiry
        plus ``jwt_leeway``), or None if it never expires."""
        if identity.expires_at is None:
            return None
        return max(0.0, (identity.expires_at - now_ms()) / 1000 + self.jwt.leeway)

    async def verify(self, token: str) -> Identity:
        """Return who ``token`` belongs to, or raise :class:`AuthError`."""
        if token.startswith(TOKEN_PREFIX):
            identity = await self._verify_opaque(token)
        elif token.count(".") == 2 and self.jwt.enabled:
            identity = await self._verify_jwt(token)
        else:
            raise AuthError("unknown token format")
        for hook in self.on_verified:
            await hook(identity)
        return identity

    async def _verify_opaque(self, token: str) -> Identity:
        row = await self._store.get_token(hash_token(token))
        now = now_ms()
        if row is None:
            raise AuthError("invalid token")
        if row.revoked_at is not None:
            raise AuthError("token revoked")
        if row.expires_at is not None and row.expires_at <= now:
            raise AuthError("token expired")
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL_MS:
            # Not on every request: a script publishing 50 times a second would
            # otherwise cost a write per publication on top of the publication itself.
            await self._touch(row.id, now)
        return Identity(row.user_id, row.device_id, row.id, row.scopes, row.expires_at)

    async def _touch(self, token_id: int, at: int) -> None:
        """Record a use, stored before this returns; uses arriving while one write runs
        share the next (one transaction for a whole reconnect storm's worth, where a
        write each cost an fsync each and most of the store's time)."""
        loop = asyncio.get_running_loop()
        if self._touch_loop is not loop:  # a new loop (tests): forget the old one's state
            self._touches, self._touched, self._toucher = {}, None, None
            self._touch_loop = loop
        self._touches[token_id] = at
        if self._touched is None:
            self._touched = loop.create_future()
            self._touched.add_done_callback(_retrieve)
        waiter = self._touched
        if self._toucher is None or self._toucher.done():
            self._toucher = loop.create_task(self._store_touches(), name="token-touches")
        await asyncio.shield(waiter)

    async def _store_touches(self) -> None:
        while self._touches and self._touched is not None:
            uses = sorted(self._touches.items())
            done, self._touches, self._touched = self._touched, {}, None
            try:
                await self._store.touch_tokens(uses)
            except Exception as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)

    async def _verify_jwt(self, token: str) -> Identity:
        try:
            claims = await self.jwt.decode(token)
        except JwtError as exc:
            raise AuthError(str(exc)) from None
        sub = str(claims["sub"])
        if not (sub.isascii() and sub.isdigit()) or not 0 < int(sub) < 2**63:
            raise AuthError("JWT sub is not a user id")
        user_id = int(sub)
        if await self._store.get_user(user_id) is None:
            raise AuthError("unknown user")
        device = claims.get("device_id")
        exp = claims["exp"]
        return Identity(user_id, device if isinstance(device, str) else None,
                        scopes=_jwt_scopes(claims.get("scopes")),
                        expires_at=int(exp * 1000) if isinstance(exp, int | float) else None)


def _retrieve(future: asyncio.Future[None]) -> None:
    # A failed write whose waiters were all cancelled is not an unretrieved exception.
    if not future.cancelled():
        future.exception()


def _jwt_scopes(claim: object) -> tuple[str, ...] | None:
    """The ``scopes`` claim: a list of strings or one space-separated string; absent
    means every right of the user. Anything else grants nothing."""
    if claim is None:
        return None
    if isinstance(claim, str):
        return tuple(claim.split())
    if isinstance(claim, list):
        return tuple(s for s in claim if isinstance(s, str))
    return ()
