"""Database access for collaborative editing: SQL written once, two backends.

Statements use PostgreSQL's ``$1`` placeholders; on SQLite they become ``?1``
(same numbering, which SQLite supports). Both dialects have ``RETURNING``,
partial indexes and ``ON CONFLICT``, so one text serves both. Every call runs
inside a :class:`Tx`: the service reads, decides and writes in one transaction.
Row locks (``FOR UPDATE``) exist on PostgreSQL only; on SQLite a write
transaction is ``BEGIN IMMEDIATE``, which already holds the single write lock.

The editing tables are the core store's database (same URL), reached through
their own connections, so the core :class:`~tidings.store.Store` stays unaware
of this app.
"""

from __future__ import annotations

import abc
import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")
Row = dict[str, Any]

_PLACEHOLDER = re.compile(r"\$(\d+)")


class Tx(abc.ABC):
    """Statements inside one transaction."""

    #: ``" FOR UPDATE"`` where row locks exist, else ``""``.
    lock_clause: str = ""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Every row of a statement, as dicts keyed by column name."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row of a statement, or ``None``."""
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None


class EditingDb(abc.ABC):
    """A source of transactions on the editing tables."""

    dialect: str = ""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """``async with db.transaction() as tx``: commit on success, roll back on error."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection."""


def open_editing_db(url: str) -> EditingDb:
    """The editing tables in the core store's database at ``url``."""
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        from tidings.store.sqlite import sqlite_path_from_url

        return SqliteEditingDb(sqlite_path_from_url(url))
    if scheme in ("postgresql", "postgres"):
        return PostgresEditingDb(url)
    raise ValueError(f"unsupported database URL {url!r}")


class _SqliteTx(Tx):
    def __init__(self, db: SqliteEditingDb) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._db.run(lambda conn: _sqlite_rows(conn, sql, args))


def _sqlite_rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[Row]:
    cursor = conn.execute(_PLACEHOLDER.sub(r"?\1", sql), args)
    try:
        # Drain the cursor: a RETURNING statement only completes once stepped to the end.
        rows = cursor.fetchall()
        names = [d[0] for d in cursor.description or ()]
    finally:
        cursor.close()
    return [dict(zip(names, row, strict=True)) for row in rows]


class SqliteEditingDb(EditingDb):
    """One connection on one worker thread; transactions take turns (an asyncio lock),
    since their statements are separate jobs on that thread."""

    dialect = "sqlite"

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000) -> None:
        self._path = path
        self._busy_timeout = busy_timeout_ms / 1000
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-editing")
        self._conn: sqlite3.Connection | None = None
        self._turn = asyncio.Lock()
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
        return self._conn

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` on the worker thread with the connection."""
        if self._closed:
            raise RuntimeError("editing database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: job(self._connection()))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction (``BEGIN IMMEDIATE``: the write lock up front)."""
        async with self._turn:
            await self.run(lambda c: c.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteTx(self)
            except BaseException:
                await asyncio.shield(self.run(_rollback))
                raise
            await self.run(lambda c: c.execute("COMMIT"))

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=True)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class _PostgresTx(Tx):
    lock_clause = " FOR UPDATE"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [dict(r) for r in await self._conn.fetch(sql, *args)]


class PostgresEditingDb(EditingDb):
    """An asyncpg pool, made on first use."""

    dialect = "postgres"

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self._url = url
        self._max_size = max_size
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._closed = False

    async def _get_pool(self) -> Any:
        if self._closed:
            raise RuntimeError("editing database is closed")
        async with self._pool_lock:
            if self._pool is None:
                import asyncpg

                from tidings.store.postgres_pool import keep_session

                self._pool = await asyncpg.create_pool(self._url, min_size=1,
                                                       max_size=self._max_size,
                                                       reset=keep_session)
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A READ COMMITTED transaction on a pooled connection."""
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            yield _PostgresTx(conn)

    async def close(self) -> None:
        """Close the pool."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            from tidings.store.postgres_pool import close_pool  # asyncpg only when used

            await close_pool(pool)
