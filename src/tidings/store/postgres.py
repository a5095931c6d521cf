"""PostgreSQL backend on an asyncpg connection pool."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import msgspec

from . import outbox
from . import postgres_sql as sql
from .base import (
    AppendResult,
    Conflict,
    NewMessage,
    Receipt,
    Store,
    StoredMessage,
    StoreError,
    Token,
    User,
    now_ms,
)
from .migrate import migrate_postgres
from .postgres_admin import PostgresAdmin
from .postgres_channels import PostgresChannels
from .postgres_outbox import INSERT_EVENTS, PostgresOutbox
from .postgres_pool import COMMAND_TIMEOUT, close_pool, keep_session
from .postgres_tokens import PostgresTokens
from .tokenrow import scopes_column, token_from_row

log = logging.getLogger(__name__)

_SCHEMES = ("postgresql://", "postgres://")
_NO_UPPER_BOUND = 2**63 - 1

# Held for the whole append transaction. Several writers (tasks, or several
# server processes) could otherwise take ids 10 and 11 and commit 11 first: a
# reader that saw 11 moves its single-integer cursor past 10, which then
# commits and is never delivered. Serialising appends makes commit order = id order.
APPEND_LOCK = 0x7469_6467_0002

_SeqKey = tuple[int, str, int]


def _key(m: NewMessage | StoredMessage) -> _SeqKey:
    return (m.sender_id, m.sender_device, m.client_seq)


class PostgresStore(PostgresAdmin, PostgresTokens, PostgresChannels, PostgresOutbox, Store):
    """A :class:`Store` in PostgreSQL, through an asyncpg pool made on first use."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        if not url.startswith(_SCHEMES):
            raise ValueError(f"expected postgresql:// or postgres://, got {url!r}")
        self._url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._closed = False

    async def _get_pool(self) -> Any:
        # open_store() is synchronous, so the pool cannot be made any earlier.
        if self._closed:
            raise StoreError("store is closed")
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._url, min_size=self._min_size, max_size=self._max_size,
                        timeout=COMMAND_TIMEOUT, command_timeout=COMMAND_TIMEOUT,
                        reset=keep_session)
        return self._pool

    async def _fetch(self, statement: str, *args: Any) -> list[Any]:
        pool = await self._get_pool()
        return list(await pool.fetch(statement, *args))

    async def _fetchrow(self, statement: str, *args: Any) -> Any:
        pool = await self._get_pool()
        return await pool.fetchrow(statement, *args)

    async def _execute(self, statement: str, *args: Any) -> str:
        pool = await self._get_pool()
        status: str = await pool.execute(statement, *args)
        return status

    # lifecycle

    async def migrate(self) -> list[str]:
        """Apply pending schema migrations; return the names applied."""
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            try:
                return await migrate_postgres(conn)
            except BaseException:
                # The pool does not reset a connection (keep_session): one that failed
                # mid-migration may still hold the migration lock, so it goes.
                conn.terminate()
                raise

    async def close(self) -> None:
        """Close every pooled connection."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await close_pool(pool)

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        await self._fetchrow("SELECT 1")

    async def refresh(self) -> None:
        """Expire the pool's connections: each is replaced on its next acquire, or
        closed when its statement in flight releases it (see Store.refresh)."""
        if self._pool is not None:
            await self._pool.expire_connections()

    # users

    async def create_user(self, username: str, password_hash: str) -> User:
        """Create a user. Raise :class:`Conflict` if the name is taken."""
        try:
            row = await self._fetchrow(sql.INSERT_USER, username, password_hash, now_ms())
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"user {username!r} already exists") from exc
        return User(*row)

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        row = await self._fetchrow(sql.USER_BY_ID, user_id)
        return None if row is None else User(*row)

    async def get_user_by_name(self, username: str) -> User | None:
        """The user with this name, or None."""
        row = await self._fetchrow(sql.USER_BY_NAME, username)
        return None if row is None else User(*row)

    # tokens

    async def create_token(self, user_id: int, token_hash: str, *, name: str = "",
                           device_id: str | None = None, expires_at: int | None = None,
                           scopes: tuple[str, ...] | None = None,
                           device_info: dict[str, str] | None = None) -> Token:
        """Store a new access token (its hash only)."""
        try:
            row = await self._fetchrow(
                sql.INSERT_TOKENS, user_id, token_hash, name, device_id, now_ms(), expires_at,
                scopes_column(scopes), msgspec.json.encode(device_info or {}).decode())
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("token already exists") from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise StoreError(f"token: no user {user_id}") from exc
        return token_from_row(row)

    async def get_token(self, token_hash: str) -> Token | None:
        """The token with this hash (revoked or not), or None."""
        row = await self._fetchrow(sql.TOKENS_BY_HASH, token_hash)
        return None if row is None else token_from_row(row)

    async def touch_token(self, token_id: int, at: int) -> None:
        """Record that the token was used at ``at``."""
        await self._fetch("UPDATE tokens SET last_used_at = $2 WHERE id = $1", token_id, at)

    async def revoke_token(self, token_id: int, at: int) -> bool:
        """Revoke a token; False if it was unknown or already revoked."""
        row = await self._fetchrow(
            "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id",
            token_id, at)
        return row is not None

    # message log

    async def append_messages(self, batch: list[NewMessage]) -> list[AppendResult]:
        """Append a batch in one transaction; results in input order."""
        if not batch:
            return []
        items = list(batch)
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.BEGIN_APPEND, APPEND_LOCK)
            # Look for earlier copies *before* inserting: ON CONFLICT DO NOTHING would
            # still draw an id for each duplicate, and the gaps it leaves would make
            # every node of a cluster wait for ids that never come (hub/gapfill.py).
            keyed = [m for m in items if m.client_seq > 0]
            earlier: dict[_SeqKey, StoredMessage] = {}
            if keyed:
                rows = await conn.fetch(
                    sql.MESSAGES_BY_CLIENT_SEQ, [m.sender_id for m in keyed],
                    [m.sender_device for m in keyed], [m.client_seq for m in keyed])
                earlier = {_key(s): s for s in (StoredMessage(*r) for r in rows)}
            fresh: list[NewMessage] = []
            fresh_keys: set[_SeqKey] = set()
            for m in items:
                if m.client_seq > 0 and (_key(m) in earlier or _key(m) in fresh_keys):
                    continue
                if m.client_seq > 0:
                    fresh_keys.add(_key(m))
                fresh.append(m)
            new_rows: list[StoredMessage] = []
            if fresh:
                now = now_ms()
                inserted = await conn.fetch(
                    sql.INSERT_BATCH,
                    [m.sender_id for m in fresh], [m.sender_device for m in fresh],
                    [m.recipient_id for m in fresh], [m.type for m in fresh],
                    [m.content for m in fresh], [m.client_seq for m in fresh], now)
                if len(inserted) != len(fresh):
                    raise StoreError("inserted rows do not line up with the batch")
                new_rows = [StoredMessage(mid, m.sender_id, m.sender_device, m.recipient_id,
                                          m.type, m.content, m.client_seq, "sent", now)
                            for mid, m in zip(sorted(r[0] for r in inserted), fresh,
                                              strict=True)]
            if new_rows and "message.stored" in self.outbox_events:  # same transaction
                events = outbox.message_stored(new_rows)
                await conn.execute(INSERT_EVENTS, [e for e, _ in events],
                                   [d for _, d in events], new_rows[0].created_at)
            if new_rows:
                await conn.execute(
                    sql.UPSERT_CONVERSATIONS,
                    [s.sender_id for s in new_rows] + [s.recipient_id for s in new_rows],
                    [s.recipient_id for s in new_rows] + [s.sender_id for s in new_rows],
                    [s.id for s in new_rows] * 2)
        results: list[AppendResult] = []
        pending = iter(new_rows)
        for m in items:
            key = _key(m)
            if m.client_seq > 0 and key in earlier:
                results.append(AppendResult(earlier[key], True))
                continue
            stored = next(pending)
            results.append(AppendResult(stored, False))
            if m.client_seq > 0:
                earlier[key] = stored  # a later copy in this batch is its duplicate
        return results

    async def get_message(self, message_id: int) -> StoredMessage | None:
        """One message by id, or None."""
        row = await self._fetchrow(sql.MESSAGE_BY_ID, message_id)
        return None if row is None else StoredMessage(*row)

    async def last_message_id(self) -> int:
        """The highest message id committed so far (0 if none)."""
        row = await self._fetchrow("SELECT coalesce(max(id), 0) FROM messages")
        return int(row[0])

    async def messages_for_device(self, user_id: int, device_id: str, after_id: int,
                                  limit: int) -> list[StoredMessage]:
        """The device's stream after ``after_id``, in id order, at most ``limit``."""
        if limit <= 0:
            return []
        rows = await self._fetch(sql.DEVICE_STREAM, user_id, device_id, after_id, limit)
        return [StoredMessage(*r) for r in rows]

    async def history(self, user_id: int, peer_id: int, before_id: int | None,
                      limit: int) -> list[StoredMessage]:
        """Messages between two users with id < ``before_id``, newest first."""
        if limit <= 0:
            return []
        bound = _NO_UPPER_BOUND if before_id is None else before_id
        rows = await self._fetch(sql.HISTORY, user_id, peer_id, bound, limit)
        return [StoredMessage(*r) for r in rows]

    async def conversation_peers(self, user_id: int) -> list[int]:
        """Users this user has exchanged a message with, most recent first."""
        return [int(r[0]) for r in await self._fetch(sql.PEERS, user_id)]

    async def mark_delivered(self, recipient_id: int, up_to_id: int) -> list[Receipt]:
        """Move sent messages to ``recipient_id`` up to ``up_to_id`` to delivered."""
        rows = await self._fetch(sql.MARK_DELIVERED, recipient_id, up_to_id)
        return [Receipt(int(r[0]), int(r[1])) for r in sorted(rows, key=lambda r: r[0])]

    async def mark_read(self, recipient_id: int, message_id: int) -> Receipt | None:
        """Move one message to ``recipient_id`` to read, unless it already is."""
        if "message.read" not in self.outbox_events:
            row = await self._fetchrow(sql.MARK_READ, recipient_id, message_id)
            return None if row is None else Receipt(int(row[0]), int(row[1]))
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():  # the change and its event
            row = await conn.fetchrow(sql.MARK_READ, recipient_id, message_id)
            if row is None:
                return None
            receipt, now = Receipt(int(row[0]), int(row[1])), now_ms()
            event, data = outbox.message_read(receipt, recipient_id, now)
            await conn.execute(INSERT_EVENTS, [event], [data], now)
            return receipt

    # device cursors

    async def get_cursor(self, user_id: int, device_id: str) -> int:
        """Highest message id this device has confirmed (0 if none)."""
        row = await self._fetchrow(sql.GET_CURSOR, user_id, device_id)
        return 0 if row is None else int(row[0])

    async def advance_cursor(self, user_id: int, device_id: str, message_id: int) -> int:
        """Move the device's cursor forward (never backwards); return the stored cursor."""
        row = await self._fetchrow(
            sql.ADVANCE_CURSOR, user_id, device_id, max(message_id, 0), now_ms())
        return int(row[0])
