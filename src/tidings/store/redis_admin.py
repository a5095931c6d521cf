"""The admin part of the store on Redis (mixed into
:class:`~tidings.store.redis.RedisStore`); see :mod:`tidings.store.admin`. The audit log
is one stream whose entry ids are the entries' ids; key names come from
:mod:`tidings.keys`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from tidings import keys

from .admin import AdminStore, AuditEntry, NewAudit
from .base import Conflict, Token, User

_entry_decoder = msgspec.msgpack.Decoder(AuditEntry)
_token_decoder = msgspec.msgpack.Decoder(Token)
_PAGE = 500  # stream entries read per round while filtering by action


class RedisAdmin(AdminStore):
    """Admin methods of the Redis store; ``redis`` is the store's client."""

    redis: Any

    if TYPE_CHECKING:
        async def get_user(self, user_id: int) -> User | None: ...

    async def update_user(self, user_id: int, *, username: str | None = None,
                          password_hash: str | None = None) -> bool:
        """Rename and/or set the password hash; False if no such user."""
        user = await self.get_user(user_id)
        if user is None:
            return False
        if username is not None and username != user.username:
            if not await self.redis.hsetnx(keys.USERS_BY_NAME, username, user_id):
                raise Conflict(f"user {username!r} already exists")
            await self.redis.hdel(keys.USERS_BY_NAME, user.username)
        changed = msgspec.structs.replace(
            user, username=user.username if username is None else username,
            password_hash=user.password_hash if password_hash is None else password_hash)
        await self.redis.set(keys.user(user_id), msgspec.msgpack.encode(changed))
        return True

    async def delete_user(self, user_id: int) -> bool:
        """Delete the user, its tokens and sync states; messages stay."""
        user = await self.get_user(user_id)
        if user is None:
            return False
        token_ids = [int(i) for i in await self.redis.zrange(keys.user_tokens(user_id), 0, -1)]
        blobs = await self.redis.mget([keys.token(i) for i in token_ids]) if token_ids else []
        hashes = [_token_decoder.decode(b).token_hash for b in blobs if b is not None]
        syncs = [k async for k in self.redis.scan_iter(match=keys.client_syncs(user_id))]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.user(user_id), keys.user_tokens(user_id),
                        *[keys.token(i) for i in token_ids], *syncs)
            pipe.hdel(keys.USERS_BY_NAME, user.username)
            if hashes:
                pipe.hdel(keys.TOKENS_BY_HASH, *hashes)
            if token_ids:
                pipe.zrem(keys.REVOKED_TOKENS, *[str(i) for i in token_ids])
            await pipe.execute()
        return True

    async def clear_channel(self, channel: str) -> int:
        """Remove the channel's retained publications; its offset (a key of its own)
        stays."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xlen(keys.channel_log(channel))
            pipe.delete(keys.channel_log(channel))
            removed, _ = await pipe.execute()
        return int(removed)

    async def audit_add(self, entry: NewAudit) -> AuditEntry:
        """Append one entry."""
        entry_id = int(await self.redis.incr(keys.NEXT_AUDIT_ID))
        stored = AuditEntry(entry_id, entry.at, entry.actor_id, entry.actor, entry.action,
                            entry.target, entry.details, entry.remote)
        await self.redis.xadd(keys.AUDIT_LOG, {"e": msgspec.msgpack.encode(stored)},
                              id=f"{entry_id}-0")
        return stored

    async def audit_list(self, limit: int, before: int | None = None,
                         action: str | None = None) -> list[AuditEntry]:
        """Entries newest first."""
        out: list[AuditEntry] = []
        top = "+" if before is None else f"({before}-0"
        while len(out) < limit:
            page = await self.redis.xrevrange(keys.AUDIT_LOG, top, "-", count=_PAGE)
            for _, fields in page:
                entry = _entry_decoder.decode(fields[b"e"])
                if action is None or entry.action == action \
                        or entry.action.startswith(action + "."):
                    out.append(entry)
                    if len(out) == limit:
                        break
            if len(page) < _PAGE:
                break
            top = f"({page[-1][0].decode()}"
        return out
