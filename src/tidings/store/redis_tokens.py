"""Access tokens on Redis (mixed into :class:`~tidings.store.redis.RedisStore`).

Each token is one msgpack record, found by its hash through one hash and listed per
user in a sorted set; revocations are a sorted set scored by time, so a node asks
for those since its last look. Every key name comes from :mod:`tidings.keys`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import redis.asyncio as aioredis

from tidings import keys

from .base import Conflict, StoreError, Token, User, now_ms

_token_decoder = msgspec.msgpack.Decoder(Token)


class RedisTokens:
    """Token methods of the Redis store; ``redis`` is the store's client."""

    redis: Any  # redis.asyncio.Redis; its replies are typed as unions of every shape

    if TYPE_CHECKING:
        async def get_user(self, user_id: int) -> User | None: ...

    async def create_token(self, user_id: int, token_hash: str, *, name: str = "",
                           device_id: str | None = None, expires_at: int | None = None,
                           scopes: tuple[str, ...] | None = None,
                           device_info: dict[str, str] | None = None) -> Token:
        """Store a new access token (its hash only)."""
        if await self.get_user(user_id) is None:
            raise StoreError(f"token: no user {user_id}")
        token_id = int(await self.redis.incr(keys.NEXT_TOKEN_ID))
        if not await self.redis.hsetnx(keys.TOKENS_BY_HASH, token_hash, token_id):
            raise Conflict("token already exists")
        token = Token(token_id, user_id, token_hash, name, device_id, now_ms(), expires_at,
                      None, None, scopes, dict(device_info or {}))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.token(token_id), msgspec.msgpack.encode(token))
            pipe.zadd(keys.user_tokens(user_id), {str(token_id): token_id})
            await pipe.execute()
        return token

    async def get_token(self, token_hash: str) -> Token | None:
        """The token with this hash (revoked or not), or None."""
        token_id = await self.redis.hget(keys.TOKENS_BY_HASH, token_hash)
        return None if token_id is None else await self.get_token_by_id(int(token_id))

    async def get_token_by_id(self, token_id: int) -> Token | None:
        """The token with this id (revoked or not), or None."""
        data = await self.redis.get(keys.token(token_id))
        return None if data is None else _decode_token(data)

    async def list_tokens(self, user_id: int) -> list[Token]:
        """Every token of a user, newest first."""
        ids = await self.redis.zrevrange(keys.user_tokens(user_id), 0, -1)
        if not ids:
            return []
        blobs = await self.redis.mget([keys.token(int(i)) for i in ids])
        return [_decode_token(b) for b in blobs if b is not None]

    async def _rewrite_token(self, token_id: int, change: dict[str, Any]) -> Token | None:
        key = keys.token(token_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:  # optimistic: retried if another writer changed the token
                try:
                    await pipe.watch(key)
                    data = await pipe.get(key)
                    if data is None:
                        await pipe.unwatch()
                        return None
                    token = msgspec.structs.replace(_decode_token(data), **change)
                    pipe.multi()
                    pipe.set(key, msgspec.msgpack.encode(token))
                    await pipe.execute()
                    return token
                except aioredis.WatchError:
                    continue

    async def update_token(self, token: Token) -> bool:
        """Store the token's editable fields; False if no such token."""
        return await self._rewrite_token(token.id, {
            "name": token.name, "device_id": token.device_id, "expires_at": token.expires_at,
            "scopes": token.scopes, "device_info": dict(token.device_info)}) is not None

    async def revoke_tokens(self, user_id: int | None, token_ids: list[int],
                            at: int) -> list[int]:
        """Revoke the user's live tokens among ``token_ids``; return those revoked now."""
        done: list[int] = []
        for token_id in sorted(set(token_ids)):
            token = await self.get_token_by_id(token_id)
            if token is None or token.revoked_at is not None or (
                    user_id is not None and token.user_id != user_id):
                continue
            if await self.redis.zadd(keys.REVOKED_TOKENS, {str(token_id): at}, nx=True):
                await self._rewrite_token(token_id, {"revoked_at": at})
                done.append(token_id)
        return done

    async def tokens_revoked_since(self, at: int) -> list[int]:
        """Ids of tokens revoked at or after ``at``, ascending."""
        ids = await self.redis.zrangebyscore(keys.REVOKED_TOKENS, at, "+inf")
        return sorted(int(i) for i in ids)

    async def touch_token(self, token_id: int, at: int) -> None:
        """Record that the token was used at ``at``."""
        await self._rewrite_token(token_id, {"last_used_at": at})

    async def revoke_token(self, token_id: int, at: int) -> bool:
        """Revoke a token; False if it was unknown or already revoked."""
        return bool(await self.revoke_tokens(None, [token_id], at))


def _decode_token(data: bytes) -> Token:
    token = _token_decoder.decode(data)
    if token.scopes is not None and not isinstance(token.scopes, tuple):
        token = msgspec.structs.replace(token, scopes=tuple(token.scopes))
    return token
