"""The SQLite store writes a burst of acks with one read of the cursors, however many
acks it holds (store/sqlite.py: store_acks); what it stores is the contract suite's."""

from __future__ import annotations

import sqlite3

from tidings.store import NewMessage, Receipt
from tidings.store.sqlite import SqliteStore


async def test_a_burst_of_acks_reads_the_cursors_once(sqlite_store: SqliteStore) -> None:
    ada, bob, cy = [await sqlite_store.create_user(n, "!") for n in ("ada", "bob", "cy")]
    sent = await sqlite_store.append_messages([
        NewMessage(ada.id, "d", bob.id, "text", "1", 1),
        NewMessage(ada.id, "d", cy.id, "text", "2", 2),
        NewMessage(ada.id, "d", bob.id, "text", "3", 3)])
    ids = [r.message.id for r in sent]
    statements: list[str] = []
    await sqlite_store._run(lambda c: c.set_trace_callback(statements.append))
    try:
        receipts = await sqlite_store.store_acks([(bob.id, "phone", ids[0]), (cy.id, "pc", ids[1]),
                                           (bob.id, "tablet", ids[2]), (bob.id, "pc", ids[0])])
    finally:
        await sqlite_store._run(lambda c: c.set_trace_callback(None))
    assert receipts == [[Receipt(ids[0], ada.id)], [Receipt(ids[1], ada.id)],
                        [Receipt(ids[2], ada.id)], []]
    reads = [s for s in statements if s.lstrip().startswith("SELECT")]
    assert len(reads) == 1 and "device_cursors" in reads[0], statements


def test_sqlite_traces_each_statement_it_runs() -> None:
    """The test above counts statements with sqlite3's trace callback: it must see each."""
    conn = sqlite3.connect(":memory:")
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    conn.execute("SELECT 1")
    conn.execute("SELECT 2")
    assert seen == ["SELECT 1", "SELECT 2"]
