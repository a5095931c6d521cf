"""Migration 0021 on a database that already has desks: every desk gets the seed
§5.3.1 business id ``workstation_id`` (its name, or name#id where names repeat),
and rows inserted later without one get one too — on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3

from tidings.store import open_store
from tidings.store.migrate import SCHEMA_MIGRATIONS_DDL, list_migrations, split_sqlite_script
from tidings.store.sqlite import sqlite_path_from_url

BEFORE = 20  # the desk tables as they were before workstation_id
DESKS = ("A", "A", "B")
INSERT = ("INSERT INTO workstations (name, x_position, y_position, created_at, updated_at) "
          "VALUES ({}, 1, 1, 0, 0)")


async def _old_schema_with_desks(url: str) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path_from_url(url), isolation_level=None)
        try:
            conn.execute(SCHEMA_MIGRATIONS_DDL)
            for migration in list_migrations("sqlite"):
                if migration.version <= BEFORE:
                    for statement in split_sqlite_script(migration.sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)",
                                 (migration.version, migration.name))
            for name in DESKS:
                conn.execute(INSERT.format("?"), (name,))
        finally:
            conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA_MIGRATIONS_DDL)
        for migration in list_migrations("postgres"):
            if migration.version <= BEFORE:
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2, 0)",
                                   migration.version, migration.name)
        for name in DESKS:
            await conn.execute(INSERT.format("$1"), name)
    finally:
        await conn.close()


async def test_existing_desks_get_a_unique_business_id(store_url: str) -> None:
    await _old_schema_with_desks(store_url)
    store = open_store(store_url)
    try:
        applied = await store.migrate()
        assert any(name.startswith("0021_") for name in applied), applied
    finally:
        await store.close()

    from tidings.apps.desks.db import open_desk_db

    db = open_desk_db(store_url)
    try:
        async with db.transaction() as tx:
            await tx.fetch(INSERT.format("$1"), "B")  # another program, no workstation_id
            await tx.fetch(INSERT.format("$1"), "C")
            rows = await tx.fetch("SELECT id, workstation_id FROM workstations ORDER BY id")
    finally:
        await db.close()
    assert [r["workstation_id"] for r in rows] == ["A#1", "A#2", "B", "B#4", "C"]
