"""The SQLite store's write-ahead log: durable commits, and checkpoints rare enough that
a busy node does not rewrite its hot index pages every few commits (store/sqlite.py)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tidings.store import NewMessage
from tidings.store.sqlite import JOURNAL_LIMIT_BYTES, WAL_CHECKPOINT_PAGES, SqliteStore

SQLITE_DEFAULT_CHECKPOINT_PAGES = 1000


async def test_the_writer_commits_durably_and_checkpoints_rarely(sqlite_store: SqliteStore) -> None:
    def settings(conn: sqlite3.Connection) -> tuple[object, ...]:
        names = ("journal_mode", "synchronous", "wal_autocheckpoint", "journal_size_limit")
        return tuple(conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names)

    assert await sqlite_store._run(settings) == (
        "wal", 2, WAL_CHECKPOINT_PAGES, JOURNAL_LIMIT_BYTES)


async def test_the_log_outgrows_sqlites_default_checkpoint(sqlite_store: SqliteStore,
                                                           tmp_path: Path) -> None:
    """Past SQLite's default 1 000 pages the log is not checkpointed (and so not
    restarted from its start): it keeps growing until WAL_CHECKPOINT_PAGES."""
    user = await sqlite_store.create_user("ada", "!")
    page = await sqlite_store._run(lambda c: c.execute("PRAGMA page_size").fetchone()[0])
    wal = tmp_path / "unit.db-wal"
    text = "x" * 3000  # about a page a message
    for _ in range(12):  # ~1 500 pages over 12 commits, each smaller than the default
        await sqlite_store.append_messages([NewMessage(user.id, "pc", user.id, "text", text, 0)
                                     for _ in range(128)])
        if os.path.getsize(wal) > 1.2 * SQLITE_DEFAULT_CHECKPOINT_PAGES * page:
            break
    assert os.path.getsize(wal) > 1.2 * SQLITE_DEFAULT_CHECKPOINT_PAGES * page
    assert os.path.getsize(wal) < WAL_CHECKPOINT_PAGES * page
    frames = await sqlite_store._run(
        lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
    assert frames[1] > SQLITE_DEFAULT_CHECKPOINT_PAGES  # the frames the log held till now
