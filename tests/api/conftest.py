"""Fixtures for the HTTP API tests: a real node per test, on SQLite and PostgreSQL.

``server_factory``, ``server`` and ``http`` are re-exported from ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

from tests.e2e.conftest import http, server, server_factory  # noqa: F401  (the real node)
