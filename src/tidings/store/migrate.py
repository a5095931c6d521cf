"""Numbered-SQL schema migrations, one mechanism for every backend.

Migrations are package files ``tidings/store/migrations/<dialect>/NNNN_name.sql``,
applied in version order, each in its own transaction together with its row in
``schema_migrations``. A migration is never edited once released: add a new file.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .base import now_ms

DIALECTS = ("sqlite", "postgres")

SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
)

# An arbitrary constant key; it only has to differ from the other advisory locks we take.
POSTGRES_MIGRATE_LOCK = 0x7469_6467_0001

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file: ``name`` is its stem, e.g. ``0001_core``."""

    version: int
    name: str
    sql: str


def list_migrations(dialect: str) -> list[Migration]:
    """The migrations shipped for ``dialect`` (``sqlite`` or ``postgres``), in order."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown migration dialect {dialect!r}")
    folder = resources.files("tidings.store") / "migrations" / dialect
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            # Fail loudly: a misnamed file would otherwise be skipped silently.
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two {dialect} migrations have version {version}")
        found[version] = Migration(version, entry.name[:-4], entry.read_text("utf-8"))
    return [found[v] for v in sorted(found)]


def split_sqlite_script(sql: str) -> list[str]:
    """Split a script into single statements (``sqlite3`` runs one per ``execute``).

    ``executescript`` would be simpler but commits any open transaction first,
    which would break "one migration, one transaction".
    """
    statements: list[str] = []
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        # complete_statement knows about string literals and comments holding ';'.
        if sqlite3.complete_statement(buffer):
            statements.append(buffer)
            buffer = ""
    # What is left is whitespace and comments after the last statement.
    return statements


def migrate_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations on an autocommit (``isolation_level=None``) connection."""
    conn.execute(SCHEMA_MIGRATIONS_DDL)
    applied: list[str] = []
    for migration in list_migrations("sqlite"):
        # BEGIN IMMEDIATE takes the write lock, so a concurrent migrator waits
        # here and then sees the version as applied.
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            ).fetchone()
            if done is None:
                for statement in split_sqlite_script(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now_ms()),
                )
                applied.append(migration.name)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return applied


async def migrate_postgres(conn: Any) -> list[str]:
    """Apply pending migrations on an asyncpg connection (not in a transaction)."""
    # A session lock serialises migrators across processes, including the
    # CREATE TABLE IF NOT EXISTS below, which is not safe to run concurrently.
    await conn.execute("SELECT pg_advisory_lock($1)", POSTGRES_MIGRATE_LOCK)
    try:
        await conn.execute(SCHEMA_MIGRATIONS_DDL)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[str] = []
        for migration in list_migrations("postgres"):
            if migration.version in done:
                continue
            async with conn.transaction():
                # No arguments: asyncpg uses the simple protocol, which runs a
                # multi-statement script.
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version, migration.name, now_ms(),
                )
            applied.append(migration.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", POSTGRES_MIGRATE_LOCK)
