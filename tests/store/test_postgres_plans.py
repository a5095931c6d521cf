"""The append's statements must not keep a plan made while ``messages`` was young: it
scans the table once the table has grown (store/postgres_sql.py, BEGIN_APPEND)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from tests.support.services import PostgresServer
from tidings.store import postgres_sql as sql
from tidings.store.base import NewMessage
from tidings.store.postgres import APPEND_LOCK, PostgresStore

LOOKUP_ARGS = "'{1,2}', '{d,d}', '{7,8}'"  # MESSAGES_BY_CLIENT_SEQ's, as SQL literals
GROW = """
INSERT INTO messages (sender_id, sender_device, recipient_id, type, content, client_seq,
                      status, created_at)
SELECT 1 + g % 2, 'd', 2 - g % 2, 'text', 'hi', g, 'sent', 0
FROM generate_series(1, 20000) AS g"""


@pytest.fixture
async def store(postgres_server: PostgresServer) -> AsyncIterator[PostgresStore]:
    """A store on a fresh database whose empty ``messages`` was analyzed (the worst
    statistics to plan on), with one pooled connection."""
    name = f"t_{secrets.token_hex(8)}"
    store = PostgresStore(postgres_server.create_database(name), max_size=1)
    try:
        await store.migrate()
        pool = await store._get_pool()
        await pool.execute("ANALYZE messages")
        yield store
    finally:
        await store.close()
        postgres_server.drop_database(name)


async def test_the_append_plans_its_statements_afresh(store: PostgresStore) -> None:
    """The lookup, the insert and the upsert of every append, on the one pooled
    connection: never a generic plan, however often they run."""
    async def append(first_seq: int) -> None:
        await store.append_messages([NewMessage(1, "d", 2, "text", "hi", first_seq + i)
                                     for i in range(3)])

    for n in range(8):  # after five runs PostgreSQL may switch to a generic plan
        await append(100_000 + 10 * n)
    pool = await store._get_pool()
    await pool.execute(GROW)
    await append(200_000)
    rows = await pool.fetch(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement = ANY($1::text[])",
        [sql.MESSAGES_BY_CLIENT_SEQ, sql.INSERT_BATCH, sql.UPSERT_CONVERSATIONS])
    assert sorted((r["generic_plans"], r["custom_plans"]) for r in rows) == [(0, 9)] * 3


async def test_under_the_append_settings_a_grown_table_is_not_scanned(
        store: PostgresStore) -> None:
    """What planning afresh buys: the lookup prepared while the table was empty uses
    its index once the table has grown (without BEGIN_APPEND: a sequential scan)."""
    pool = await store._get_pool()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(sql.BEGIN_APPEND, APPEND_LOCK)
        await conn.execute(f"PREPARE lookup (bigint[], text[], bigint[]) AS "
                           f"{sql.MESSAGES_BY_CLIENT_SEQ}")
        for _ in range(6):
            await conn.execute(f"EXECUTE lookup ({LOOKUP_ARGS})")
        await conn.execute(GROW)
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE lookup ({LOOKUP_ARGS})"))
        await conn.execute("DEALLOCATE lookup")
    assert "Index Scan using messages_client_seq" in plan, plan
    assert "Seq Scan" not in plan, plan
