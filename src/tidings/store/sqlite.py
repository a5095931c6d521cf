"""SQLite backend: stdlib ``sqlite3`` driven from one dedicated worker thread.

Every call runs on a single-thread executor that owns the only connection, so
the event loop never blocks on disk and statements never interleave. SQLite
serialises writers, so ids are committed in id order without further locking.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from . import outbox
from . import sqlite_sql as sql
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
WAL_CHECKPOINT_PAGES = 10_000
"""Checkpoint the write-ahead log once it holds this many pages (~40 MiB; SQLite's
default is 1 000). A checkpoint copies every page the log changed back into the
database file, and a busy chat node changes the same few hundred index pages (the
newest entries of each recipient and sender) in every commit: at 1 000 pages it
checkpointed every few commits and rewrote those pages each time. At 10 000, a
commit at 10k chats/s took 3 ms instead of 7, and ack p50 / p99 fell from 25-31 /
58-65 ms to 7-10 / 35-42 (bench: durable chat, docs/benchmarks.md row 3)."""
JOURNAL_LIMIT_BYTES = 64 * 1024 * 1024
"""After a checkpoint, a log that grew past this (a long reader held it) shrinks back."""
_NO_UPPER_BOUND = 2**63 - 1


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
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
                conn.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT_BYTES}")
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

    async def _read(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        """The rows of a short read: read in place if it can be (sqlite_reader.py), else
        by the worker."""
        if self._closed:
            raise StoreError("store is closed")
        found = self._reader.rows(statement, params)
        if found is None:
            found = await self._run(lambda c: _rows(c, statement, params))
        return found

    async def _point(self, statement: str, params: tuple[Any, ...]) -> Any | None:
        """The one row of a lookup by key, or None (see :meth:`_read`)."""
        found = await self._read(statement, params)
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
                return User(*_rows(conn, sql.INSERT_USER, (username, password_hash, now_ms()))[0])
            except sqlite3.IntegrityError as exc:
                raise _integrity_error(exc, f"user {username!r}") from exc
        return await self._run(job)

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        row = await self._point(sql.USER_BY_ID, (user_id,))
        return None if row is None else User(*row)

    async def get_user_by_name(self, username: str) -> User | None:
        """The user with this name, or None."""
        row = await self._run(lambda c: _one(c, sql.USER_BY_NAME, (username,)))
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
                for start in range(0, len(items), sql.ROWS_PER_INSERT):
                    chunk = items[start:start + sql.ROWS_PER_INSERT]
                    # One multi-row INSERT per chunk: a statement per row cost more
                    # Python than SQLite (bench: durable chat). Ids follow row order.
                    rows = _rows(conn, sql.insert_messages_sql(len(chunk)), tuple(
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
                            row = _one(conn, sql.MESSAGE_BY_CLIENT_SEQ, key)
                            if row is None:
                                raise StoreError(
                                    f"message not stored and no earlier copy: {m!r}")
                            earlier = StoredMessage(*row)
                        results.append(AppendResult(earlier, True))
                conn.executemany(sql.UPSERT_CONVERSATION,
                                 [(u, p, mid) for (u, p), mid in sorted(latest.items())])
                if record:  # the webhook rides this commit (store/outbox.py)
                    insert_events(conn, outbox.message_stored(
                        [r.message for r in results if not r.duplicate]), now)
            return results
        return await self._run(job)

    async def get_message(self, message_id: int) -> StoredMessage | None:
        """One message by id, or None."""
        row = await self._run(lambda c: _one(c, sql.MESSAGE_BY_ID, (message_id,)))
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
            rows = await self._run(lambda c: _rows(c, sql.DEVICE_STREAM, params))
        else:
            rows = await self._read(sql.DEVICE_STREAM, params)
            if rows:  # read in place: a long backlog's replay must not hold the loop
                await asyncio.sleep(0)
        return [StoredMessage(*r) for r in rows]

    async def history(self, user_id: int, peer_id: int, before_id: int | None,
                      limit: int) -> list[StoredMessage]:
        """Messages between two users with id < ``before_id``, newest first."""
        if limit <= 0:
            return []
        bound = _NO_UPPER_BOUND if before_id is None else before_id
        rows = await self._run(lambda c: _rows(c, sql.HISTORY, (user_id, peer_id, bound, limit)))
        return [StoredMessage(*r) for r in rows]

    async def conversation_peers(self, user_id: int) -> list[int]:
        """Users this user has exchanged a message with, most recent first."""
        rows = await self._run(lambda c: _rows(c, sql.PEERS, (user_id,)))
        return [int(r[0]) for r in rows]

    async def mark_delivered(self, recipient_id: int, up_to_id: int) -> list[Receipt]:
        """Move sent messages to ``recipient_id`` up to ``up_to_id`` to delivered."""
        rows = await self._run(lambda c: _rows(c, sql.MARK_DELIVERED, (recipient_id, up_to_id)))
        return [Receipt(int(r[0]), int(r[1])) for r in sorted(rows)]

    async def mark_read(self, recipient_id: int, message_id: int) -> Receipt | None:
        """Move one message to ``recipient_id`` to read, unless it already is."""
        if "message.read" not in self.outbox_events:
            row = await self._run(lambda c: _one(c, sql.MARK_READ, (message_id, recipient_id)))
            return None if row is None else Receipt(int(row[0]), int(row[1]))

        def job(conn: sqlite3.Connection) -> Receipt | None:
            with _transaction(conn):  # the change and its event
                row = _one(conn, sql.MARK_READ, (message_id, recipient_id))
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
            out: list[list[Receipt]] = []
            with _transaction(conn):
                # Each ack marks above the highest cursor before it: the stored ones, read
                # once for the burst, and those of the same user's earlier acks in it.
                users = sorted({user_id for user_id, _, _ in items})
                floors = {int(u): int(top) for u, top in
                          _rows(conn, sql.highest_cursors_sql(len(users)), tuple(users))}
                conn.executemany(sql.ADVANCE_CURSORS, [
                    (user_id, device_id, max(up_to, 0), now)
                    for user_id, device_id, up_to in items])
                for user_id, _, up_to in items:
                    floor = floors.get(user_id, 0)
                    if up_to <= floor:
                        out.append([])
                        continue
                    floors[user_id] = up_to
                    rows = _rows(conn, sql.MARK_DELIVERED_ABOVE, (user_id, floor, up_to))
                    out.append([Receipt(int(r[0]), int(r[1])) for r in sorted(rows)])
            return out
        return await self._run(job)

    # device cursors

    async def get_cursor(self, user_id: int, device_id: str) -> int:
        """Highest message id this device has confirmed (0 if none)."""
        row = await self._point(sql.GET_CURSOR, (user_id, device_id))
        return 0 if row is None else int(row[0])

    async def advance_cursor(self, user_id: int, device_id: str, message_id: int) -> int:
        """Move the device's cursor forward (never backwards); return the stored cursor.

        The cursor alone: ``store_acks`` takes every cursor of the user as proof that
        everything below it is marked delivered, so the server moves cursors through
        ``store_acks`` only (this is the contract suite's building block)."""
        params = (user_id, device_id, max(message_id, 0), now_ms())
        rows = await self._run(lambda c: _rows(c, sql.ADVANCE_CURSOR, params))
        return int(rows[0][0])
