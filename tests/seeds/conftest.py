"""Fixtures for the seed-literal contract tests: a real ``tidings serve`` process on
a free port, on SQLite and on a throwaway PostgreSQL database (``store_url`` is
parametrized over both), stopped by PID after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.nodes import NodeProcess

Serve = Callable[..., NodeProcess]


@pytest.fixture
def serve(store_url: str, tmp_path: Path) -> Iterator[Serve]:
    """``serve(TIDINGS_X="...")`` starts a node on the test's database with extra
    environment settings and waits until ``/api/health`` answers."""
    started: list[NodeProcess] = []

    def start(**env: str) -> NodeProcess:
        node = NodeProcess(f"seed-node{len(started) + 1}", tmp_path,
                           {"TIDINGS_DATABASE_URL": store_url, **env})
        started.append(node)
        return node.start(timeout=60)

    yield start
    for node in reversed(started):
        node.stop()


@pytest.fixture
def seed_node(serve: Serve) -> NodeProcess:
    """A node with default settings (embedded bus, no demo data)."""
    return serve()


async def login(http: aiohttp.ClientSession, url: str, username: str) -> tuple[int, str]:
    """Register ``username`` on the node at ``url`` and log in: ``(user_id, token)``."""
    body = {"username": username, "password": "correct horse battery"}
    async with http.post(url + "/api/v1/auth/register", json=body) as r:
        assert r.status == 201, await r.text()
    async with http.post(url + "/api/v1/auth/login", json=body) as r:
        assert r.status == 200, await r.text()
        data = await r.json()
    return int(data["user_id"]), str(data["token"])
