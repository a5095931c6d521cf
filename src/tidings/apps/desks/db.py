"""Database access for the desk map: one SQL dialect, two backends.

The desk queries are written once, with PostgreSQL's ``$1`` placeholders and
integer-millisecond times; on SQLite the placeholders become ``?1`` (same
numbering). A :class:`Tx` runs statements inside one transaction. ``FOR UPDATE``
row locks are taken on PostgreSQL only: on SQLite a write transaction is
``BEGIN IMMEDIATE``, which already holds the database's single write lock.
"""

from __future__ import annotations

import abc
import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")
Row = dict[str, Any]

_PLACEHOLDER = re.compile(r"\$(\d+)")


class DeskDbError(Exception):
    """A statement failed for a reason the caller may report (constraint, bad value)."""


class OverlapViolation(DeskDbError):
    """PostgreSQL's ``no_overlap`` exclusion constraint refused a booking."""


class Tx(abc.ABC):
    """Statements inside one transaction."""

    #: ``" FOR UPDATE"`` where row locks exist, else ``""``.
    lock_clause: str = ""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """All rows of a statement, as dicts."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row of a statement, or ``None``."""
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or ``None``."""
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))


class DeskDb(abc.ABC):
    """A connection source for the desk queries."""

    dialect: str = ""

    @abc.abstractmethod
    def transaction(self, *, write: bool = True) -> Any:
        """``async with db.transaction() as tx``: commit on success, roll back on error."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    def pool_stats(self) -> dict[str, int]:
        """Connections in use, idle and the most allowed (seed §6.6 "数据库连接")."""
        return {"size": 1, "in_use": 0, "max": 1}


def open_desk_db(url: str, *, max_size: int = 10) -> DeskDb:
    """The desk database at the core store's ``url`` (``sqlite:///`` or ``postgresql://``)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        from tidings.store.sqlite import sqlite_path_from_url

        return SqliteDeskDb(sqlite_path_from_url(url))
    if scheme in ("postgresql", "postgres"):
        return PostgresDeskDb(url, max_size=max_size)
    raise ValueError(f"unsupported store URL {url!r}")


# PostgreSQL


class _PgTx(Tx):
    lock_clause = " FOR UPDATE"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        import asyncpg

        try:
            return [dict(r) for r in await self._conn.fetch(sql, *args)]
        except asyncpg.ExclusionViolationError as exc:
            raise OverlapViolation(str(exc)) from None
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
            raise DeskDbError(str(exc)) from None


class PostgresDeskDb(DeskDb):
    """An asyncpg pool of its own (the core store's pool serves the chat path)."""

    dialect = "postgres"

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self.url = url
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def pool(self) -> Any:
        """The pool, created on first use."""
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    import asyncpg

                    from tidings.store.postgres_pool import keep_session

                    self._pool = await asyncpg.create_pool(self.url, min_size=1,
                                                           max_size=self._max_size,
                                                           reset=keep_session)
        return self._pool

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Tx]:
        """A pooled connection inside a transaction (read committed)."""
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction(readonly=not write):
            yield _PgTx(conn)

    async def close(self) -> None:
        """Close the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            from tidings.store.postgres_pool import close_pool  # asyncpg only when used

            await close_pool(pool)

    def pool_stats(self) -> dict[str, int]:
        """asyncpg's own counts."""
        if self._pool is None:
            return {"size": 0, "in_use": 0, "max": self._max_size}
        size = self._pool.get_size()
        return {"size": size, "in_use": size - self._pool.get_idle_size(),
                "max": self._max_size}


# SQLite


class _SqliteTx(Tx):
    def __init__(self, db: SqliteDeskDb) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        query = _PLACEHOLDER.sub(r"?\1", sql)

        def job(conn: sqlite3.Connection) -> list[Row]:
            try:
                cursor = conn.execute(query, args)
            except sqlite3.IntegrityError as exc:
                raise DeskDbError(str(exc)) from None
            try:
                names = [d[0] for d in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            finally:
                cursor.close()

        return await self._db.run(job)


class SqliteDeskDb(DeskDb):
    """One connection on one worker thread; transactions are serialised by a lock,
    since statements of two transactions must never interleave on one connection."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-desks")
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._in_use = 0
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=5.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
        return self._conn

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` on the worker thread with the connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: job(self._connection()))

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Tx]:
        """``BEGIN IMMEDIATE`` (write) or ``BEGIN`` (read), under the connection lock."""
        async with self._lock:
            self._in_use = 1
            try:
                await self.run(lambda c: c.execute("BEGIN IMMEDIATE" if write else "BEGIN"))
                try:
                    yield _SqliteTx(self)
                except BaseException:
                    await self.run(lambda c: c.execute("ROLLBACK") if c.in_transaction else None)
                    raise
                await self.run(lambda c: c.execute("COMMIT"))
            finally:
                self._in_use = 0

    async def close(self) -> None:
        """Close the connection and stop the worker (a second call does nothing)."""
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=True)

    def pool_stats(self) -> dict[str, int]:
        """One connection, busy while a transaction runs."""
        return {"size": 1 if self._conn is not None else 0, "in_use": self._in_use, "max": 1}
