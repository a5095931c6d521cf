"""The Redis store: seed 004's Redis Streams layout, behind the common interface.

Each user's inbox and each conversation is a Redis Stream whose entry ids are
``<message id>-0``, so recovery is one ``XRANGE`` from the device's last id
(seed 004). A device's sync state lives at ``client:sync:{user_id}:{device_id}``
with a TTL (``sync_state_ttl``, 30 days), refreshed on every write. Message
bodies are kept in one hash (msgpack), statuses in another. Messages older than
``stream_retention`` are trimmed away (:mod:`.redis_retention`).

One Lua script appends a whole batch: message ids come from ``INCR`` inside it,
so the batch is atomic, commit order equals id order across every node, and a
resent chat (found by its ``(sender, device, seq)`` before any id is drawn)
burns no id. Every key name comes from :mod:`tidings.keys`.

Durability is Redis's own: run it with ``appendonly yes`` and ``appendfsync
always`` if an acknowledged message must survive a Redis crash
(docs/deployment.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
from redis.exceptions import RedisError

from tidings import keys
from tidings.redis_pool import redis_client

from .base import (
    AppendResult,
    Conflict,
    NewMessage,
    Receipt,
    Store,
    StoredMessage,
    StoreError,
    User,
    now_ms,
)
from .redis_admin import RedisAdmin
from .redis_channels import RedisChannels
from .redis_retention import RedisRetention
from .redis_tokens import RedisTokens

SYNC_STATE_TTL = 30 * 86400
SCHEMA = "redis-1"


class _Body(msgspec.Struct, array_like=True, frozen=True):
    """The immutable part of a message, as stored in the messages hash."""

    sender_id: int
    sender_device: str
    recipient_id: int
    type: str
    content: str
    client_seq: int
    created_at: int


class SyncState(msgspec.Struct, frozen=True):
    """Seed 004's ``ClientSyncState``: what a device has confirmed, and when."""

    user_id: int
    device_id: str
    last_message_id: int
    last_sync_at: int
    client_id: str = ""  # seed 004's name of the device: the same as device_id


_body_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(_Body)
_user_decoder = msgspec.msgpack.Decoder(User)
_sync_decoder = msgspec.json.Decoder(SyncState)

# ARGV: now, then 10 per message: inbox(recipient), inbox(sender), conversation,
# peers(sender), peers(recipient), undelivered(recipient), sender, recipient,
# client-seq key ("" for none), body. Returns {id, duplicate} per message.
_APPEND = """
local out = {}
local n = (#ARGV - 1) / 10
for i = 0, n - 1 do
  local a = 1 + i * 10
  local seq_key = ARGV[a + 9]
  local existing = false
  if seq_key ~= '' then existing = redis.call('HGET', KEYS[3], seq_key) end
  if existing then
    out[#out + 1] = {tonumber(existing), 1}
  else
    local id = redis.call('INCR', KEYS[1])
    local entry = id .. '-0'
    redis.call('HSET', KEYS[2], id, ARGV[a + 10])
    redis.call('HSET', KEYS[4], id, 'sent')
    if seq_key ~= '' then redis.call('HSET', KEYS[3], seq_key, id) end
    redis.call('XADD', ARGV[a + 1], entry, 'i', id)
    if ARGV[a + 2] ~= ARGV[a + 1] then redis.call('XADD', ARGV[a + 2], entry, 'i', id) end
    redis.call('XADD', ARGV[a + 3], entry, 'i', id)
    redis.call('ZADD', ARGV[a + 4], id, ARGV[a + 8])
    redis.call('ZADD', ARGV[a + 5], id, ARGV[a + 7])
    redis.call('ZADD', ARGV[a + 6], id, id)
    out[#out + 1] = {id, 0}
  end
end
local last = redis.call('GET', KEYS[1])
if last then redis.call('XADD', KEYS[5], '*', 'i', last) end
return out
"""

# KEYS: undelivered(recipient), statuses. ARGV: up_to. Returns the ids moved.
_MARK_DELIVERED = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, id in ipairs(ids) do
  redis.call('HSET', KEYS[2], id, 'delivered')
  redis.call('ZREM', KEYS[1], id)
end
return ids
"""

# KEYS: undelivered(recipient), statuses. ARGV: id. 1 if it became read.
_MARK_READ = """
local status = redis.call('HGET', KEYS[2], ARGV[1])
if not status or status == 'read' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], 'read')
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

# KEYS: sync state. ARGV: state JSON, its last_message_id, ttl. Never moves backwards.
_ADVANCE = """
local current = redis.call('GET', KEYS[1])
if current then
  local last = tonumber(cjson.decode(current).last_message_id)
  if last >= tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    return last
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return tonumber(ARGV[2])
"""


class RedisStore(RedisAdmin, RedisTokens, RedisChannels, RedisRetention, Store):
    """A :class:`Store` in one Redis (``redis://HOST:PORT/DB``)."""

    def __init__(self, url: str, *, sync_state_ttl: int = SYNC_STATE_TTL) -> None:
        query = parse_qs(urlsplit(url).query)
        # ?sync_state_ttl=SECONDS in the URL overrides the default (30 days).
        self._ttl = int(query.pop("sync_state_ttl", [str(sync_state_ttl)])[0])
        # Any: redis-py's return types are unions of every reply shape.
        self._redis: Any = redis_client(
            url.split("?", 1)[0], socket_connect_timeout=5.0, socket_timeout=10.0,
            retry_on_timeout=True)
        self._append: Any = self._redis.register_script(_APPEND)
        self._mark_delivered: Any = self._redis.register_script(_MARK_DELIVERED)
        self._mark_read: Any = self._redis.register_script(_MARK_READ)
        self._advance: Any = self._redis.register_script(_ADVANCE)
        self._closed = False

    @property
    def redis(self) -> Any:
        """The client, for the channel methods; raises once the store is closed."""
        if self._closed:
            raise StoreError("store is closed")
        return self._redis

    # lifecycle

    async def migrate(self) -> list[str]:
        """Record the layout version once; Redis needs no schema."""
        added = await self.redis.sadd(keys.MIGRATIONS, SCHEMA)
        return [SCHEMA] if added else []

    async def close(self) -> None:
        """Disconnect."""
        if not self._closed:
            self._closed = True
            await self._redis.aclose()

    async def ping(self) -> None:
        """Raise if Redis cannot be reached."""
        try:
            await self.redis.ping()
        except RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    # users

    async def create_user(self, username: str, password_hash: str) -> User:
        """Create a user. Raise :class:`Conflict` if the name is taken."""
        user_id = int(await self.redis.incr(keys.NEXT_USER_ID))
        user = User(user_id, username, password_hash, now_ms())
        await self.redis.set(keys.user(user_id), msgspec.msgpack.encode(user))
        if not await self.redis.hsetnx(keys.USERS_BY_NAME, username, user_id):
            await self.redis.delete(keys.user(user_id))
            raise Conflict(f"user {username!r} already exists")
        return user

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        data = await self.redis.get(keys.user(user_id))
        return None if data is None else _user_decoder.decode(data)

    async def get_user_by_name(self, username: str) -> User | None:
        """The user with this name, or None."""
        user_id = await self.redis.hget(keys.USERS_BY_NAME, username)
        return None if user_id is None else await self.get_user(int(user_id))

    # message log

    async def append_messages(self, batch: list[NewMessage]) -> list[AppendResult]:
        """Append a batch atomically (one Lua script); results in input order."""
        if not batch:
            return []
        now = now_ms()
        argv: list[Any] = [now]
        bodies: list[_Body] = []
        for m in batch:
            if not isinstance(m.content, str):
                raise StoreError("message content must be text")
            body = _Body(m.sender_id, m.sender_device, m.recipient_id, m.type, m.content,
                         m.client_seq, now)
            bodies.append(body)
            argv += [keys.inbox(m.recipient_id), keys.inbox(m.sender_id),
                     keys.conversation(m.sender_id, m.recipient_id), keys.peers(m.sender_id),
                     keys.peers(m.recipient_id), keys.undelivered(m.recipient_id),
                     m.sender_id, m.recipient_id,
                     f"{m.sender_id}:{m.sender_device}:{m.client_seq}" if m.client_seq else "",
                     _body_encoder.encode(body)]
        rows = await self._append(
            keys=[keys.NEXT_MESSAGE_ID, keys.MESSAGES, keys.CLIENT_SEQS, keys.STATUSES,
                  keys.MESSAGE_TIMES],
            args=argv)
        duplicates = [int(i) for i, dup in rows if dup]
        earlier = {m.id: m for m in await self._messages(duplicates)} if duplicates else {}
        results = []
        for (message_id, dup), body in zip(rows, bodies, strict=True):
            if dup:
                results.append(AppendResult(earlier[int(message_id)], True))
            else:
                results.append(AppendResult(_stored(int(message_id), body, "sent"), False))
        return results

    async def _messages(self, ids: list[int]) -> list[StoredMessage]:
        """Messages by id, in the order given (missing ones left out)."""
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.MESSAGES, ids)
            pipe.hmget(keys.STATUSES, ids)
            blobs, statuses = await pipe.execute()
        return [_stored(i, _body_decoder.decode(b), s.decode())
                for i, b, s in zip(ids, blobs, statuses, strict=True) if b is not None]

    async def get_message(self, message_id: int) -> StoredMessage | None:
        """One message by id, or None."""
        found = await self._messages([message_id])
        return found[0] if found else None

    async def last_message_id(self) -> int:
        """The last id ``INCR`` drew (0 if none): the append script draws and commits
        in one step, so it is committed."""
        return int(await self.redis.get(keys.NEXT_MESSAGE_ID) or 0)

    async def messages_for_device(self, user_id: int, device_id: str, after_id: int,
                                  limit: int) -> list[StoredMessage]:
        """XRANGE of the user's inbox after the device's last id (seed 004), leaving out
        what this device sent to others itself."""
        out: list[StoredMessage] = []
        start = f"({after_id}-0" if after_id > 0 else "-"
        while len(out) < limit:
            entries = await self.redis.xrange(keys.inbox(user_id), start, "+",
                                              count=max(limit - len(out), 16))
            if not entries:
                break
            ids = [int(e[0].split(b"-")[0]) for e in entries]
            for m in await self._messages(ids):
                own = m.sender_id == user_id and m.sender_device == device_id
                if not own or m.recipient_id == user_id:
                    out.append(m)
            start = f"({ids[-1]}-0"
        return out[:max(limit, 0)]

    async def history(self, user_id: int, peer_id: int, before_id: int | None,
                      limit: int) -> list[StoredMessage]:
        """Messages between two users with id < ``before_id``, newest first."""
        if limit <= 0:
            return []
        end = "+" if before_id is None else f"({before_id}-0"
        entries = await self.redis.xrevrange(keys.conversation(user_id, peer_id), end, "-",
                                             count=limit)
        return await self._messages([int(e[0].split(b"-")[0]) for e in entries])

    async def conversation_peers(self, user_id: int) -> list[int]:
        """Users this user has exchanged a message with, most recent first."""
        return [int(p) for p in await self.redis.zrevrange(keys.peers(user_id), 0, -1)]

    async def mark_delivered(self, recipient_id: int, up_to_id: int) -> list[Receipt]:
        """Move sent messages to ``recipient_id`` up to ``up_to_id`` to delivered."""
        moved = await self._mark_delivered(keys=[keys.undelivered(recipient_id), keys.STATUSES],
                                           args=[up_to_id])
        ids = sorted(int(i) for i in moved)
        return [Receipt(m.id, m.sender_id) for m in await self._messages(ids)]

    async def mark_read(self, recipient_id: int, message_id: int) -> Receipt | None:
        """Move one message to ``recipient_id`` to read, unless it already is."""
        message = await self.get_message(message_id)
        if message is None or message.recipient_id != recipient_id:
            return None
        changed = await self._mark_read(keys=[keys.undelivered(recipient_id), keys.STATUSES],
                                        args=[message_id])
        return Receipt(message_id, message.sender_id) if changed else None

    # device cursors: seed 004's sync state, with a TTL

    async def sync_state(self, user_id: int, device_id: str) -> SyncState | None:
        """The device's sync state, or None (never synced, or expired)."""
        data = await self.redis.get(keys.client_sync(user_id, device_id))
        return None if data is None else _sync_decoder.decode(data)

    async def get_cursor(self, user_id: int, device_id: str) -> int:
        """Highest message id this device has confirmed (0 if none, or expired)."""
        state = await self.sync_state(user_id, device_id)
        return 0 if state is None else state.last_message_id

    async def advance_cursor(self, user_id: int, device_id: str, message_id: int) -> int:
        """Move the device's sync state forward (never backwards) and refresh its TTL."""
        target = max(message_id, 0)
        state = SyncState(user_id, device_id, target, now_ms(), client_id=device_id)
        return int(await self._advance(
            keys=[keys.client_sync(user_id, device_id)],
            args=[msgspec.json.encode(state), target, self._ttl]))


def _stored(message_id: int, body: _Body, status: str) -> StoredMessage:
    return StoredMessage(message_id, body.sender_id, body.sender_device, body.recipient_id,
                         body.type, body.content, body.client_seq, status, body.created_at)

