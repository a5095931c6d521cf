"""Clusters of ``tidings serve`` processes on a real Redis or PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import PostgresServer
from tests.support.nodes import NodeProcess
from tests.support.services import RedisServer
from tidings.client import AiohttpTransport, Client, Connector, ReconnectPolicy, Transport

HEARTBEAT = 0.5
NODE_TIMEOUT = 3.0


class Cluster:
    """Three nodes on one bus and one store, and helpers to use them."""

    def __init__(self, env: dict[str, str], log_dir: Path, redis: RedisServer | None) -> None:
        self.env = env
        self.redis = redis
        self.nodes = [NodeProcess(name, log_dir, env) for name in ("a", "b", "c")]
        self.http: aiohttp.ClientSession | None = None
        self.clients: list[Client] = []

    async def start(self) -> Cluster:
        await asyncio.gather(*(asyncio.to_thread(n.start) for n in self.nodes))
        self.http = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        if self.http is not None:
            await self.http.close()
        for node in self.nodes:
            node.stop()

    async def register(self, name: str, node: int = 0) -> tuple[int, str]:
        """A new user and a token, over HTTP on one node."""
        assert self.http is not None
        url = self.nodes[node].http_url
        body = {"username": name, "password": "correct horse"}
        async with self.http.post(url + "/api/v1/auth/register", json=body) as r:
            assert r.status == 201, await r.text()
        async with self.http.post(url + "/api/v1/auth/login", json=body) as r:
            assert r.status == 200, await r.text()
            data = await r.json()
        return int(data["user_id"]), str(data["token"])

    async def admin_token(self) -> str:
        """A token with the admin scope, made in the store as an operator would."""
        from tidings.auth import Authenticator
        from tidings.config import Settings
        from tidings.store import open_store

        store = open_store(self.env["TIDINGS_DATABASE_URL"])
        try:
            user = await store.create_user(f"root{secrets.token_hex(3)}", "!")
            token, _ = await Authenticator(store, Settings()).issue(user.id, scopes=("admin",))
        finally:
            await store.close()
        return token

    async def get(self, path: str, token: str, node: int = 0) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.get(self.nodes[node].http_url + path,
                                 headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status, await r.json()

    def connector(self, first: int) -> Connector:
        """Like a load balancer: try the nodes in turn from ``first``, skipping dead ones."""
        state = {"next": first}

        async def connect(_url: str) -> Transport:
            last: BaseException | None = None
            for _ in self.nodes:
                node = self.nodes[state["next"] % len(self.nodes)]
                try:
                    return await AiohttpTransport.connect(node.ws_url)
                except (aiohttp.ClientError, OSError) as exc:
                    last = exc
                    state["next"] += 1
            assert last is not None
            raise last

        return connect

    async def client(self, token: str, node: int, device: str, *,
                     policy: ReconnectPolicy | None = None, **kwargs: Any) -> Client:
        """A connected SDK client that starts on ``node`` and fails over to the others."""
        client = Client(self.nodes[node].ws_url, token, device_id=device,
                        reconnect=policy or ReconnectPolicy(initial_interval=0.2,
                                                            max_interval=1.0),
                        connector=self.connector(node), **kwargs)
        await client.connect()
        self.clients.append(client)
        return client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed cluster test shows what each node logged (the nodes are gone by then)."""
    outcome = yield
    report = outcome.get_result()
    group = getattr(item, "funcargs", {}).get("cluster")
    if report.when == "call" and report.failed and isinstance(group, Cluster):
        for node in group.nodes:
            report.sections.append((f"node {node.name} log (last 60 lines)",
                                    node.log_tail(60)))


@pytest.fixture(scope="module")
def cluster_redis() -> Iterator[RedisServer]:
    """A Redis of the cluster tests' own: some of them restart it."""
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["redis", "postgres"])
async def cluster(request: pytest.FixtureRequest, postgres_server: PostgresServer,
                  tmp_path: Path) -> AsyncIterator[Cluster]:
    """Three nodes: on Redis alone (bus, registry and Redis Streams store), on
    PostgreSQL alone, or ("redis-bus") on a Redis bus with a PostgreSQL store."""
    name = f"cl_{secrets.token_hex(6)}"
    database = postgres_server.create_database(name)
    env = {"TIDINGS_DATABASE_URL": database, "TIDINGS_HEARTBEAT_INTERVAL": str(HEARTBEAT),
           "TIDINGS_NODE_TIMEOUT": str(NODE_TIMEOUT), "TIDINGS_LOG_LEVEL": "info",
           "TIDINGS_RATE_LIMIT": "5000", "TIDINGS_RATE_BURST": "5000"}
    redis: RedisServer | None = None
    if request.param in ("redis", "redis-bus"):
        redis = request.getfixturevalue("cluster_redis")
        import redis as redis_py

        flush = redis_py.Redis.from_url(redis.url)
        flush.flushall()
        flush.close()
        env["TIDINGS_BUS_URL"] = redis.url
        if request.param == "redis":
            env["TIDINGS_DATABASE_URL"] = redis.url
            # The nodes share one SQL database for the desk map and editing.
            env["TIDINGS_APPS_DATABASE_URL"] = database
    else:
        env["TIDINGS_BUS_URL"] = database
    # Migrate once before three nodes race to do it.
    from tidings.store import open_store

    store = open_store(env["TIDINGS_DATABASE_URL"])
    await store.migrate()
    await store.close()
    group = Cluster(env, tmp_path, redis)
    try:
        await group.start()
        yield group
    finally:
        await group.close()
        postgres_server.drop_database(name)
