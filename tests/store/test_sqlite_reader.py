"""The SQLite store's short reads run on the event loop's thread, never wait there,
and fall back to the worker thread when SQLite is busy (store/sqlite_reader.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.store import NewMessage
from tidings.store.sqlite import SqliteStore
from tidings.store.sqlite_reader import LOOP_READ_ROWS, LoopReader


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    made = SqliteStore(str(tmp_path / "t.db"))
    await made.migrate()
    try:
        yield made
    finally:
        await made.close()


async def test_a_connects_reads_do_not_wait_for_the_worker(store: SqliteStore) -> None:
    user = await store.create_user("ada", "!")
    token = await store.create_token(user.id, "hash-1")
    [sent] = await store.append_messages([NewMessage(user.id, "pc", user.id, "text", "hi", 1)])
    await store.advance_cursor(user.id, "phone", 0)
    busy = asyncio.ensure_future(store._run(lambda c: time.sleep(1.0)))  # the worker is taken
    await asyncio.sleep(0.05)
    started = time.monotonic()
    assert await store.get_user(user.id) == user
    assert await store.get_token("hash-1") == token
    assert await store.get_user(user.id + 1) is None
    assert await store.get_cursor(user.id, "phone") == 0
    page = await store.messages_for_device(user.id, "phone", 0, LOOP_READ_ROWS)
    assert [m.id for m in page] == [sent.message.id]
    assert time.monotonic() - started < 0.5  # not queued behind the second-long job
    long_page = asyncio.ensure_future(
        store.messages_for_device(user.id, "phone", 0, LOOP_READ_ROWS + 1))
    await asyncio.sleep(0.2)
    assert not long_page.done()  # a longer page is the worker's: it waits its turn
    await busy
    assert [m.id for m in await long_page] == [sent.message.id]


async def test_a_lookup_sees_the_commit_before_it(store: SqliteStore) -> None:
    for n in range(20):  # each written by the worker, read at once in the loop
        user = await store.create_user(f"u{n}", "!")
        assert await store.get_user(user.id) == user


def test_a_locked_database_is_not_waited_for(tmp_path: Path) -> None:
    """A writer holds the file (rollback journal: in WAL mode readers are never kept
    out): the reader says so at once instead of sleeping in the event loop."""
    path = tmp_path / "plain.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    other.execute("BEGIN EXCLUSIVE")
    try:
        reader = LoopReader(str(path))
        started = time.monotonic()
        assert reader.rows("SELECT id FROM t", ()) is None
        assert time.monotonic() - started < 0.1
    finally:
        other.execute("COMMIT")
        other.close()
    assert reader.rows("SELECT id FROM t", ()) == []  # free again: read here
    reader.close()


async def test_what_the_reader_cannot_read_the_worker_reads(
        store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    user = await store.create_user("ada", "!")
    monkeypatch.setattr(store._reader, "rows", lambda sql, params: None)  # busy
    assert await store.get_user(user.id) == user


def test_an_in_memory_database_is_never_read_beside_the_worker() -> None:
    reader = LoopReader(":memory:")
    assert reader.rows("SELECT 1", ()) is None


async def test_a_page_read_in_place_lets_the_loop_run_others(store: SqliteStore) -> None:
    """A replay reads page after page: read in place, each must still yield, or a long
    backlog would hold every other connection of the node until it is out."""
    user = await store.create_user("ada", "!")
    await store.append_messages([NewMessage(user.id, "pc", user.id, "text", "hi", 1)])
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    waiting = asyncio.ensure_future(other())
    for _ in range(3):
        assert await store.messages_for_device(user.id, "phone", 0, LOOP_READ_ROWS)
        ran.append("page")
    await waiting
    assert ran[0] == "other", ran
