"""Fixtures for the broker tests: a real node per test (SQLite and PostgreSQL), raw
WebSocket connections, and users with scoped tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import connect, http, server, server_factory  # noqa: F401
from tests.support.server import RunningServer

UserFactory = Callable[..., Awaitable[tuple[int, str]]]


@pytest.fixture
def user(server: RunningServer) -> UserFactory:  # noqa: F811
    """``await user(scopes=…)`` → (user_id, token): a user straight from the store."""

    async def make(scopes: tuple[str, ...] | None = None, **kw: Any) -> tuple[int, str]:
        user_id, _ = await server.quick_user()
        token, _ = await server.node.service.auth.issue(user_id, scopes=scopes, **kw)
        return user_id, token

    return make


async def api(http: aiohttp.ClientSession, server: RunningServer, method: str,  # noqa: F811
              path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
    """One HTTP call; (status, decoded JSON body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    async with http.request(method, server.http_url + path, headers=headers, **kw) as r:
        return r.status, await r.json()
