"""The store contract runs on every backend, Redis included (the other suites run
nodes on SQLite and PostgreSQL only, to keep the whole run short)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

STORE_BACKENDS = ["sqlite", "postgres", "redis"]


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of a fresh, empty database on each store backend."""
    if request.param == "redis":
        yield request.getfixturevalue("redis_url")
        return
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
        return
    import secrets

    server = request.getfixturevalue("postgres_server")
    name = f"t_{secrets.token_hex(8)}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)
