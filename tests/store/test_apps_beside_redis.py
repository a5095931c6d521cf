"""The desk map and editing beside a Redis store (issue 15): on their SQL database
(``apps_database_url``) with users mirrored from Redis, or refused at start when
nodes share a bus and no database is named: never silently off."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.server import RunningServer
from tidings.apps.sidestore import UserMirror
from tidings.auth import Identity
from tidings.config import Settings
from tidings.server import Server
from tidings.store import open_store


@pytest.fixture(params=["sqlite", "postgres"])
def apps_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh SQL database for the apps."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'apps.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"apps_{secrets.token_hex(6)}"
    try:
        yield server.create_database(name)
    finally:
        server.drop_database(name)


async def test_apps_run_on_their_sql_database(redis_url: str, apps_url: str) -> None:
    node = await RunningServer(redis_url, apps_database_url=apps_url).start()
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


async def test_a_failing_copy_does_not_refuse_the_login(redis_url: str, tmp_path: Path,
                                                       caplog) -> None:
    store = open_store(redis_url)
    user = await store.create_user("carol", "!")
    mirror = UserMirror(store, f"sqlite:///{tmp_path}/never-migrated.db")
    try:
        await mirror.on_verified(Identity(user.id))  # no users table: logged
        assert "could not copy user" in caplog.text
        assert not await mirror.ensure(999999)  # no such user in Redis
    finally:
        await mirror.close()
        await store.close()
