"""Fixtures for the hostile-input tests: a real node per test, on SQLite and PostgreSQL.

``server_factory``, ``server``, ``http`` and ``connect`` are re-exported from
``tests/e2e/conftest.py``: every test gets its own node. Unlike e2e, the database
under those nodes is shared by the tests of one module (``store_url`` is
module-scoped here): creating and migrating a PostgreSQL database per test cost
more than the tests themselves. Tests only ever use users they create, so they
do not see each other's data — and a store that already holds data is the
realistic target anyway.

Every test also starts with an empty :data:`~tests.hostile.helpers.server_errors`
log, which :func:`~tests.hostile.helpers.assert_bystander_chats` checks.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest

from tests.conftest import BACKENDS
from tests.e2e.conftest import connect, http, server, server_factory  # noqa: F401  (the real node)
from tests.hostile.helpers import server_errors
from tests.support.services import PostgresServer


@pytest.fixture(scope="module", params=BACKENDS)
def store_url(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database on each backend, shared by the tests of one module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'tidings.db'}"
        return
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"hostile_{secrets.token_hex(6)}"
    url = postgres.create_database(name)
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture(autouse=True)
def _collect_server_errors() -> Iterator[None]:
    logger = logging.getLogger("tidings")
    server_errors.records.clear()
    logger.addHandler(server_errors)
    try:
        yield
    finally:
        logger.removeHandler(server_errors)
        server_errors.records.clear()
