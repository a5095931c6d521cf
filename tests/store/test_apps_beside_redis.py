"""The desk map and editing beside a Redis store (issue 15): on their SQL database
(``apps_database_url``) with users mirrored from Redis, or refused at start when
nodes share a bus and no database is named: never silently off."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.support.server import RunningServer
from tidings.config import Settings
from tidings.server import Server


async def test_apps_run_on_their_sql_database(redis_url: str, tmp_path: Path) -> None:
    node = await RunningServer(redis_url, apps_database_url=f"sqlite:///{tmp_path}/a.db").start()
    try:
        assert node.node.editing is not None and node.node.desks is not None
        owner_id, owner = await node.quick_user()
        member_id, _ = await node.quick_user()
        headers = {"Authorization": f"Bearer {owner}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(node.http_url + "/api/v1/workspaces",
                                 json={"name": "w"}) as r:
                assert r.status == 201
                workspace = (await r.json())["id"]
            members = f"{node.http_url}/api/v1/workspaces/{workspace}/members"
            async with http.put(f"{members}/{member_id}", json={"role": "viewer"}) as r:
                assert r.status == 200  # never seen by the apps: copied on demand
            async with http.put(f"{members}/999999", json={"role": "viewer"}) as r:
                assert r.status == 404
            async with http.get(members) as r:
                assert {m["user_id"] for m in (await r.json())["members"]} == {
                    owner_id, member_id}
    finally:
        await node.stop()


def test_a_lone_node_defaults_to_an_sqlite_file(redis_url: str) -> None:
    server = Server(Settings(port=0, database_url=redis_url))
    assert server.user_mirror is not None
    assert server.user_mirror.url == "sqlite:///tidings-apps.db"


def test_nodes_sharing_a_bus_must_name_the_database(redis_url: str) -> None:
    with pytest.raises(ValueError, match="apps_database_url"):
        Server(Settings(port=0, database_url=redis_url, bus_url=redis_url))


def test_the_apps_may_be_switched_off(redis_url: str) -> None:
    server = Server(Settings(port=0, database_url=redis_url, bus_url=redis_url,
                             apps_enabled=False))
    assert server.editing is None and server.desks is None
