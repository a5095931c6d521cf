"""Fixtures for unit tests: a real, migrated SQLite store in a temp directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.store.sqlite import SqliteStore


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'unit.db'}")
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()
