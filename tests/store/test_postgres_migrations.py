"""PostgreSQL migrations that change data, applied to a database that has some."""

from __future__ import annotations

import secrets

from tests.support.services import PostgresServer
from tidings.store.base import NewMessage
from tidings.store.postgres import PostgresStore


async def test_0048_marks_what_lies_below_a_cursor_then_drops_the_index(
        postgres_server: PostgresServer) -> None:
    name = f"t_{secrets.token_hex(8)}"
    store = PostgresStore(postgres_server.create_database(name))
    try:
        await store.migrate()
        stored = await store.append_messages(
            [NewMessage(1, "d", 2, "text", f"m{i}", i + 1) for i in range(4)]
            + [NewMessage(2, "d", 3, "text", "to carol", 9)])
        ids = [r.message.id for r in stored]
        pool = await store._get_pool()
        # The database as 0047 left it: the index, and a cursor stored without its marks
        # (before 0048 they were two statements) past Bob's first three messages.
        await pool.execute(
            "CREATE INDEX messages_undelivered ON messages (recipient_id, id) "
            "WHERE status = 'sent';"
            "DELETE FROM schema_migrations WHERE name = '0048_drop_messages_undelivered'")
        await pool.execute("INSERT INTO device_cursors VALUES (2, 'phone', $1, 0)", ids[2])
        assert await store.migrate() == ["0048_drop_messages_undelivered"]
        statuses = [(await store.get_message(i)).status for i in ids]  # type: ignore[union-attr]
        assert statuses == ["delivered"] * 3 + ["sent", "sent"]
        assert await pool.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'messages_undelivered'") == 0
        # From here on, acks mark only above the highest cursor.
        assert [r.message_id for r in (await store.store_acks([(2, "tablet", ids[3])]))[0]] \
            == [ids[3]]
    finally:
        await store.close()
        postgres_server.drop_database(name)
