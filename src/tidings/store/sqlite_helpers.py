"""Statement helpers shared by the SQLite store's modules (all run on its worker thread)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .base import Conflict, StoreError


def rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Every row of one statement.

    The cursor is always drained: a RETURNING statement only finishes (and, in
    autocommit mode, commits) once stepped to the end.
    """
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def one(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any | None:
    """The first row of one statement (drained like :func:`rows`), or None."""
    found = rows(conn, sql, params)
    return found[0] if found else None


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Commit the block's statements together, or roll them back if it raises.

    IMMEDIATE takes the write lock up front, so the transaction cannot fail
    half-way with SQLITE_BUSY when it upgrades from reading to writing.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def integrity_error(exc: sqlite3.IntegrityError, what: str) -> StoreError:
    """The store error for a failed constraint: :class:`Conflict` for a duplicate."""
    if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CONSTRAINT_UNIQUE",
                                                 "SQLITE_CONSTRAINT_PRIMARYKEY"):
        return Conflict(f"{what} already exists")
    return StoreError(f"{what}: {exc}")
