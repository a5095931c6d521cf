"""Redis cache-aside for the desk lists: hits, invalidation on every write event
(REST and raw SQL), and a node that keeps answering when Redis is gone."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from tests.desks.conftest import DeskNode, make_desk_node
from tests.support.server import RunningServer
from tests.support.services import PostgresServer, RedisServer, free_port


async def _cache(desks: DeskNode) -> dict[str, int]:
    status, metrics = await desks.call("GET", "/api/metrics")
    assert status == 200
    return metrics["cache"]


@pytest.fixture
async def cached(store_url: str, redis_server: RedisServer) -> AsyncIterator[DeskNode]:
    node = await RunningServer(store_url, cache_url=redis_server.url).start()
    try:
        yield await make_desk_node(node)
    finally:
        await node.stop()


async def test_second_read_is_a_hit_and_a_write_invalidates(cached: DeskNode) -> None:
    assert (await _cache(cached))["enabled"]
    _, first = await cached.call("GET", "/api/workstations?floor_id=1")
    _, second = await cached.call("GET", "/api/workstations?floor_id=1")
    assert first == second
    counts = await _cache(cached)
    assert (counts["hits"], counts["misses"]) == (1, 1)

    await cached.call("POST", "/api/workstations/1/occupy")
    _, third = await cached.call("GET", "/api/workstations?floor_id=1")
    assert third["workstations"][0]["status"] == "occupied"  # the writer reads its write
    counts = await _cache(cached)
    assert (counts["hits"], counts["misses"]) == (1, 2)
    assert counts["hit_rate"] == pytest.approx(1 / 3, abs=1e-3)

    for path in ("/api/map?dept=Design", "/api/desks?dept=Design", "/api/workstations/stats"):
        _, a = await cached.call("GET", path)
        _, b = await cached.call("GET", path)
        assert a == b, path
    assert (await _cache(cached))["hits"] == 4


async def test_raw_sql_change_invalidates_the_cache(postgres_server: PostgresServer,
                                                    redis_server: RedisServer) -> None:
    name = f"t_{secrets.token_hex(8)}"
    url = postgres_server.create_database(name)
    node = await RunningServer(url, cache_url=redis_server.url).start()
    try:
        desks = await make_desk_node(node)
        _, before = await desks.call("GET", "/api/workstations/stats")
        assert before["by_status"]["disabled"] == 0
        postgres_server.psql("UPDATE workstations SET status = 'disabled' WHERE id = 2",
                             database=name)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the NOTIFY arrives within milliseconds
            _, after = await desks.call("GET", "/api/workstations/stats")
            if after["by_status"]["disabled"] == 1:
                break
            await asyncio.sleep(0.05)
        assert after["by_status"]["disabled"] == 1
    finally:
        await node.stop()
        postgres_server.drop_database(name)


async def test_a_node_without_redis_still_answers(store_url: str) -> None:
    node = await RunningServer(store_url, cache_url=f"redis://127.0.0.1:{free_port()}/0").start()
    try:
        desks = await make_desk_node(node)
        for _ in range(2):
            status, body = await desks.call("GET", "/api/workstations")
            assert status == 200 and body["total"] == 24
        status, _ = await desks.call("POST", "/api/workstations/1/occupy")
        assert status == 200
        cache = await _cache(desks)
        assert cache["errors"] >= 2 and cache["hits"] == 0
        status, metrics = await desks.call("GET", "/api/metrics")
        assert metrics["status"]["cache"] == "error"
    finally:
        await node.stop()
