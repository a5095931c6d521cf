"""SQLite backend: stdlib ``sqlite3`` driven from one dedicated worker thread.

Every call runs on a single-thread executor that owns the only connection, so
the event loop never blocks on disk and statements never interleave. SQLite
serialises writers, so ids are committed in id order without further locking.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from . import outbox
from .base import (
    AppendResult,
    NewMessage,
    Receipt,
    Store,
    StoredMessage,
    StoreError,
    User,
    now_ms,
)
from .migrate import migrate_sqlite
from .sqlite_admin import SqliteAdmin
from .sqlite_channels import SqliteChannels
from .sqlite_helpers import integrity_error as _integrity_error
from .sqlite_helpers import one as _one
from .sqlite_helpers import rows as _rows
from .sqlite_helpers import transaction as _transaction
from .sqlite_outbox import SqliteOutbox, insert_events
from .sqlite_reader import LOOP_READ_ROWS, LoopReader
from .sqlite_tokens import SqliteTokens
from .sqlite_worker import BatchWorker

T = TypeVar("T")

_URL_PREFIX = "sqlite:///"
CACHE_KIB = 16 * 1024
"""The connection's page cache (SQLite's default is 2 MiB)."""
_NO_UPPER_BOUND = 2**63 - 1


# Plain literals, never formatted: every value travels as a bound parameter.
_USER_BY_ID = """
SELECT id, username, password_hash, created_at FROM users WHERE id = ?"""

_USER_BY_NAME = """
SELECT id, username, password_hash, created_at FROM users WHERE username = ?"""

_INSERT_USER = """
INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)
RETURNING id, username, password_hash, created_at"""

# OR IGNORE, not ON CONFLICT DO NOTHING: both skip a row whose client_seq was stored
# already, but a statement that may abort half-way (a NOT NULL or CHECK failure) keeps a
# statement journal of every page it changes, and with a batch's hundreds of index
# pages SQLite spilled it to a temporary file: 40 % of the store thread's time (bench:
# durable chat). Such a skipped row is caught below. The rest of each row is the
# caller's: only what identifies it comes back.
_INSERT_MESSAGES = """
INSERT OR IGNORE INTO messages (sender_id, sender_device, recipient_id, type, content,
                                client_seq, status, created_at)
VALUES {rows}
RETURNING id, sender_id, sender_device, client_seq"""
_INSERT_ROW = "(?, ?, ?, ?, ?, ?, 'sent', ?)"
# 7 parameters a row: 128 rows stay under SQLite's oldest variable limit (999).
_ROWS_PER_INSERT = 128


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_messages_sql(rows: int) -> str:
    return _INSERT_MESSAGES.format(rows=", ".join([_INSERT_ROW] * rows))

_MESSAGE_BY_CLIENT_SEQ = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages
WHERE sender_id = ? AND sender_device = ? AND client_seq = ? AND client_seq > 0"""

_MESSAGE_BY_ID = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages WHERE id = ?"""

_UPSERT_CONVERSATION = """
INSERT INTO conversations (user_id, peer_id, last_message_id) VALUES (?, ?, ?)
ON CONFLICT (user_id, peer_id)
DO UPDATE SET last_message_id = max(last_message_id, excluded.last_message_id)"""

# Two index range scans merged, rather than an OR that would sort the whole stream.
_DEVICE_STREAM = """
SELECT * FROM (
    SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status,
           created_at
    FROM messages WHERE recipient_id = ?1 AND id > ?3 ORDER BY id LIMIT ?4)
UNION ALL
SELECT * FROM (
    SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status,
           created_at
    FROM messages
    WHERE sender_id = ?1 AND sender_device <> ?2 AND recipient_id <> ?1 AND id > ?3
    ORDER BY id LIMIT ?4)
ORDER BY id LIMIT ?4"""

_HISTORY = """
SELECT id, sender_id, sender_device, recipient_id, type, content, client_seq, status, created_at
FROM messages
WHERE ((sender_id = ?1 AND recipient_id = ?2) OR (sender_id = ?2 AND recipient_id = ?1))
  AND id < ?3
ORDER BY id DESC LIMIT ?4"""

_PEERS = """
SELECT peer_id FROM conversations WHERE user_id = ? ORDER BY last_message_id DESC"""

_MARK_DELIVERED = """
UPDATE messages SET status = 'delivered'
WHERE recipient_id = ? AND id <= ? AND status = 'sent'
RETURNING id, sender_id"""

# store_acks: only above the highest cursor of the user's devices (``?2``): each cursor
# was reached by a store_acks that marked everything up to it, and SQLite gives ids in
# commit order (one writer), so no message below it can still be 'sent'. The range walks
# messages_recipient (there is no partial index of undelivered messages to keep up).
_MARK_DELIVERED_ABOVE = """
UPDATE messages SET status = 'delivered'
WHERE recipient_id = ?1 AND id > ?2 AND id <= ?3 AND status = 'sent'
RETURNING id, sender_id"""

_HIGHEST_CURSOR = """
SELECT coalesce(max(last_message_id), 0) FROM device_cursors WHERE user_id = ?"""

_MARK_READ = """
UPDATE messages SET status = 'read'
WHERE id = ? AND recipient_id = ? AND status <> 'read'
RETURNING id, sender_id"""

_GET_CURSOR = """
SELECT last_message_id FROM device_cursors WHERE user_id = ? AND device_id = ?"""

_ADVANCE_CURSOR = """
INSERT INTO device_cursors (user_id, device_id, last_message_id, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (user_id, device_id) DO UPDATE SET
    last_message_id = max(last_message_id, excluded.last_message_id),
    updated_at = excluded.updated_at
RETURNING last_message_id"""


def sqlite_path_from_url(url: str) -> str:
    """The file path in ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``."""
    if not url.startswith(_URL_PREFIX) or len(url) == len(_URL_PREFIX):
        raise ValueError(f"expected sqlite:///<path>, got {url!r}")
    return url[len(_URL_PREFIX):]


class SqliteStore(SqliteAdmin, SqliteTokens, SqliteChannels, SqliteOutbox, Store):
    """A :class:`Store` in one SQLite file (WAL mode, ``synchronous=FULL``)."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000) -> None:
        if sqlite3.sqlite_version_info < (3, 35, 0):
            raise StoreError(f"SQLite >= 3.35 is needed (RETURNING), "
                             f"found {sqlite3.sqlite_version}")
        self._path = path
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._worker = BatchWorker("tidings-sqlite")  # the only thread touching _conn
        self._conn: sqlite3.Connection | None = None
        self._reader = LoopReader(path)  # short reads, on the event loop's thread
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """Open the store named by a ``sqlite:///`` URL."""
        return cls(sqlite_path_from_url(url))

    # plumbing

    def _connection(self) -> sqlite3.Connection:
        # Only ever called on the worker thread.
        if self._conn is None:
            # timeout= is SQLite's busy_timeout: wait for another process's write lock.
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout_ms / 1000,
                                   isolation_level=None, check_same_thread=False)
            try:
                _rows(conn, "PRAGMA journal_mode=WAL")
                # FULL: a message is acknowledged only once it is stored, so
                # it must survive power loss, not just a process crash.
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                # The message indexes' pages (one per recipient and sender) are used
                # by every commit: with the default 2 MiB cache each was read back from
                # the file (pread), a third of a busy chat node's system time.
                conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("store is closed")
        return await self._worker.submit(lambda: job(self._connection()))

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """The rows of a short read: read in place if it can be (sqlite_reader.py), else
        by the worker."""
        if self._closed:
            raise StoreError("store is closed")
        found = self._reader.rows(sql, params)
        if found is None:
            found = await self._run(lambda c: _rows(c, sql, params))
        return found

    async def _point(self, sql: str, params: tuple[Any, ...]) -> Any | None:
        """The one row of a lookup by key, or None (see :meth:`_read`)."""
        found = await self._read(sql, params)
        return found[0] if found else None

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # lifecycle

    async def migrate(self) -> list[str]:
        """Apply pending schema migrations; return the names applied."""
        return await self._run(migrate_sqlite)

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        if self._closed:
            return
        self._closed = True
        self._reader.close()
        try:
            # Queued behind any job still pending, so those finish first.
            await self._worker.submit(self._close_connection)
        finally:
            self._worker.shutdown()

    async def ping(self) -> None:
        """Raise if the database file cannot be read."""
        await self._run(lambda c: _rows(c, "SELECT 1"))

    # users

    async def create_user(self, username: str, password_hash: str) -> User:
        """Create a user. Raise :class:`Conflict` if the name is taken."""
        def job(conn: sqlite3.Connection) -> User:
            try:
                return User(*_rows(conn, _INSERT_USER, (username, password_hash, now_ms()))[0])
            except sqlite3.IntegrityError as exc:
                raise _integrity_error(exc, f"user {username!r}") from exc
        return await self._run(job)

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        row = await self._point(_USER_BY_ID, (user_id,))
        return None if row is None else User(*row)

    async def get_user_by_name(self, username: str) -> User | None:
        """The user with this name, or None."""
        row = await self._run(lambda c: _one(c, _USER_BY_NAME, (username,)))
        return None if row is None else User(*row)

    # message log

    async def append_messages(self, batch: list[NewMessage]) -> list[AppendResult]:
        """Append a batch in one transaction; results in input order."""
        if not batch:
            return []
        items = list(batch)  # the caller's list may change while the worker runs
        record = "message.stored" in self.outbox_events

        def job(conn: sqlite3.Connection) -> list[AppendResult]:
            now = now_ms()
            results: list[AppendResult] = []
            latest: dict[tuple[int, int], int] = {}
            stored_now: dict[tuple[int, str, int], StoredMessage] = {}
            with _transaction(conn):
                for start in range(0, len(items), _ROWS_PER_INSERT):
                    chunk = items[start:start + _ROWS_PER_INSERT]
                    # One multi-row INSERT per chunk: a statement per row cost more
                    # Python than SQLite (bench: durable chat). Ids follow row order.
                    rows = _rows(conn, _insert_messages_sql(len(chunk)), tuple(
                        v for m in chunk for v in (m.sender_id, m.sender_device,
                                                   m.recipient_id, m.type, m.content,
                                                   m.client_seq, now)))
                    keyed = {(r[1], r[2], r[3]): r[0] for r in rows if r[3]}
                    plain = sorted(r[0] for r in rows if not r[3])
                    if len(plain) != sum(1 for m in chunk if not m.client_seq):
                        # OR IGNORE skipped a row for something else than its client_seq
                        raise StoreError("a message of the batch was not stored")
                    plain_ids = iter(plain)
                    for m in chunk:
                        key = (m.sender_id, m.sender_device, m.client_seq)
                        mid = keyed.pop(key, None) if m.client_seq else next(plain_ids)
                        if mid is not None:
                            stored = StoredMessage(mid, m.sender_id, m.sender_device,
                                                   m.recipient_id, m.type, m.content,
                                                   m.client_seq, "sent", now)
                            stored_now[key] = stored
                            latest[(m.sender_id, m.recipient_id)] = mid
                            latest[(m.recipient_id, m.sender_id)] = mid
                            results.append(AppendResult(stored, False))
                            continue
                        # Skipped on the client_seq index: stored earlier in this batch,
                        # or before it.
                        earlier = stored_now.get(key)
                        if earlier is None:
                            row = _one(conn, _MESSAGE_BY_CLIENT_SEQ, key)
                            if row is None:
                                raise StoreError(
                                    f"message not stored and no earlier copy: {m!r}")
                            earlier = StoredMessage(*row)
                        results.append(AppendResult(earlier, True))
                conn.executemany(_UPSERT_CONVERSATION,
                                 [(u, p, mid) for (u, p), mid in sorted(latest.items())])
                if record:  # the webhook rides this commit (store/outbox.py)
                    insert_events(conn, outbox.message_stored(
                        [r.message for r in results if not r.duplicate]), now)
            return results
        return await self._run(job)

    async def get_message(self, message_id: int) -> StoredMessage | None:
        """One message by id, or None."""
        row = await self._run(lambda c: _one(c, _MESSAGE_BY_ID, (message_id,)))
        return None if row is None else StoredMessage(*row)

    async def last_message_id(self) -> int:
        """The highest message id committed so far (0 if none)."""
        row = await self._run(lambda c: _one(c, "SELECT coalesce(max(id), 0) FROM messages", ()))
        return int(row[0]) if row else 0

    async def messages_for_device(self, user_id: int, device_id: str, after_id: int,
                                  limit: int) -> list[StoredMessage]:
        """The device's stream after ``after_id``, in id order, at most ``limit``."""
        if limit <= 0:
            return []
        params = (user_id, device_id, after_id, limit)
        if limit > LOOP_READ_ROWS:
            rows = await self._run(lambda c: _rows(c, _DEVICE_STREAM, params))
        else:
            rows = await self._read(_DEVICE_STREAM, params)
            if rows:  # read in place: a long backlog's replay must not hold the loop
                await asyncio.sleep(0)
        return [StoredMessage(*r) for r in rows]

    async def history(self, user_id: int, peer_id: int, before_id: int | None,
                      limit: int) -> list[StoredMessage]:
        """Messages between two users with id < ``before_id``, newest first."""
        if limit <= 0:
            return []
        bound = _NO_UPPER_BOUND if before_id is None else before_id
        rows = await self._run(lambda c: _rows(c, _HISTORY, (user_id, peer_id, bound, limit)))
        return [StoredMessage(*r) for r in rows]

    async def conversation_peers(self, user_id: int) -> list[int]:
        """Users this user has exchanged a message with, most recent first."""
        rows = await self._run(lambda c: _rows(c, _PEERS, (user_id,)))
        return [int(r[0]) for r in rows]

    async def mark_delivered(self, recipient_id: int, up_to_id: int) -> list[Receipt]:
        """Move sent messages to ``recipient_id`` up to ``up_to_id`` to delivered."""
        rows = await self._run(lambda c: _rows(c, _MARK_DELIVERED, (recipient_id, up_to_id)))
        return [Receipt(int(r[0]), int(r[1])) for r in sorted(rows)]

    async def mark_read(self, recipient_id: int, message_id: int) -> Receipt | None:
        """Move one message to ``recipient_id`` to read, unless it already is."""
        if "message.read" not in self.outbox_events:
            row = await self._run(lambda c: _one(c, _MARK_READ, (message_id, recipient_id)))
            return None if row is None else Receipt(int(row[0]), int(row[1]))

        def job(conn: sqlite3.Connection) -> Receipt | None:
            with _transaction(conn):  # the change and its event
                row = _one(conn, _MARK_READ, (message_id, recipient_id))
                if row is None:
                    return None
                receipt, now = Receipt(int(row[0]), int(row[1])), now_ms()
                insert_events(conn, [outbox.message_read(receipt, recipient_id, now)], now)
                return receipt
        found: Receipt | None = await self._run(job)
        return found

    async def store_acks(self, acks: list[tuple[int, str, int]]) -> list[list[Receipt]]:
        """Cursors and delivered marks of many devices in one transaction (one fsync)."""
        if not acks:
            return []
        items, now = list(acks), now_ms()

        def job(conn: sqlite3.Connection) -> list[list[Receipt]]:
            out = []
            with _transaction(conn):
                for user_id, device_id, up_to in items:
                    row = _one(conn, _HIGHEST_CURSOR, (user_id,))  # before this one moves
                    floor = int(row[0]) if row else 0
                    _rows(conn, _ADVANCE_CURSOR, (user_id, device_id, max(up_to, 0), now))
                    rows = _rows(conn, _MARK_DELIVERED_ABOVE, (user_id, floor, up_to))
                    out.append([Receipt(int(r[0]), int(r[1])) for r in sorted(rows)])
            return out
        return await self._run(job)

    # device cursors

    async def get_cursor(self, user_id: int, device_id: str) -> int:
        """Highest message id this device has confirmed (0 if none)."""
        row = await self._point(_GET_CURSOR, (user_id, device_id))
        return 0 if row is None else int(row[0])

    async def advance_cursor(self, user_id: int, device_id: str, message_id: int) -> int:
        """Move the device's cursor forward (never backwards); return the stored cursor.

        The cursor alone: ``store_acks`` takes every cursor of the user as proof that
        everything below it is marked delivered, so the server moves cursors through
        ``store_acks`` only (this is the contract suite's building block)."""
        params = (user_id, device_id, max(message_id, 0), now_ms())
        rows = await self._run(lambda c: _rows(c, _ADVANCE_CURSOR, params))
        return int(rows[0][0])
