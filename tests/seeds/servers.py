"""Fixtures of the seed contract tests (seeds 001 to 004): a real ``tidings serve``
subprocess per module and store, users made over HTTP, and a MessagePack client
that writes frames exactly as seed 001 §2.2 does.

Test modules import the fixtures they use (``from tests.seeds.servers import …``).
Nodes are module-scoped (one process per module and store; tests make their own
users); :func:`running_node` starts an extra one with other settings inside a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.support.nodes import NodeProcess
from tests.support.services import PostgresServer, RedisServer

#: HS256 secret every seed node accepts JWTs with (seed 003: JWT + API tokens).
JWT_SECRET = "seed-contract-tests-secret-32-bytes!"
SQL_STORES = ["sqlite", "postgres"]
ALL_STORES = [*SQL_STORES, "redis"]
_names = itertools.count(1)
_redis_dbs = itertools.cycle(range(1, 16))


@dataclass
class User:
    """A registered user with a token from ``/api/v1/auth/login``."""

    id: int
    name: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        """The JWT-style header every seed's HTTP client sends."""
        return {"Authorization": f"Bearer {self.token}"}


class SeedNode:
    """A running ``tidings serve`` and the store it runs on."""

    def __init__(self, process: NodeProcess, store: str, env: dict[str, str]) -> None:
        self.process = process
        self.store = store
        self.env = env

    @property
    def http_url(self) -> str:
        return self.process.http_url

    @property
    def ws_url(self) -> str:
        return self.process.ws_url

    async def user(self, http: aiohttp.ClientSession, device_id: str | None = None) -> User:
        """Register a new user and log in over the HTTP API."""
        name = f"seed{next(_names)}_{secrets.token_hex(3)}"
        body: dict[str, Any] = {"username": name, "password": "correct horse"}
        async with http.post(self.http_url + "/api/v1/auth/register", json=body) as r:
            assert r.status == 201, await r.text()
        if device_id is not None:
            body["device_id"] = device_id
        async with http.post(self.http_url + "/api/v1/auth/login", json=body) as r:
            assert r.status == 200, await r.text()
            data = await r.json()
        return User(data["user_id"], name, data["token"])


def _store_env(request: pytest.FixtureRequest, store: str, folder: Path,
               cleanups: list[Any]) -> dict[str, str]:
    if store == "sqlite":
        return {"TIDINGS_DATABASE_URL": f"sqlite:///{folder / 'tidings.db'}"}
    if store == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = f"seed_{secrets.token_hex(6)}"
        url = server.create_database(name)
        cleanups.append(lambda: server.drop_database(name))
        return {"TIDINGS_DATABASE_URL": url}
    redis: RedisServer = request.getfixturevalue("redis_server")
    import redis as redis_py

    # A database number of its own (1-15), emptied: nodes running at the same time
    # (a module's node and a test's) never see each other's keys.
    url = f"{redis.url.rsplit('/', 1)[0]}/{next(_redis_dbs)}"
    client = redis_py.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    # Beside a Redis store the desk map and editing keep their tables in SQL
    # (apps_database_url); a file in the test's folder, not the working directory.
    return {"TIDINGS_DATABASE_URL": url,
            "TIDINGS_APPS_DATABASE_URL": f"sqlite:///{folder / 'apps.db'}"}


@contextlib.contextmanager
def running_node(request: pytest.FixtureRequest, store: str, folder: Path,
                 share: SeedNode | None = None, **settings: Any) -> Iterator[SeedNode]:
    """A ``tidings serve`` on ``store`` with extra settings (``TIDINGS_*`` from the
    keyword names); stopped by PID, its database dropped, when the block ends. With
    ``share``, on that node's databases instead of fresh ones (kept afterwards)."""
    cleanups: list[Any] = []
    env = dict(share.env) if share is not None else _store_env(request, store, folder,
                                                                 cleanups)
    env["TIDINGS_LOG_LEVEL"] = "info"
    env["TIDINGS_JWT_SECRET"] = JWT_SECRET
    env.update({f"TIDINGS_{k.upper()}": str(v) for k, v in settings.items()})
    process = NodeProcess(f"{store}-{secrets.token_hex(3)}", folder, env)
    try:
        process.start(timeout=60)
        yield SeedNode(process, store, env)
    finally:
        process.stop()
        for cleanup in cleanups:
            cleanup()


@pytest.fixture(scope="module", params=SQL_STORES)
def node(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeedNode]:
    """One node per module on SQLite, then on PostgreSQL."""
    with running_node(request, request.param, tmp_path_factory.mktemp("seed")) as started:
        yield started


@pytest.fixture(scope="module", params=ALL_STORES)
def any_node(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeedNode]:
    """One node per module on SQLite, PostgreSQL and Redis (seed 004's store)."""
    with running_node(request, request.param, tmp_path_factory.mktemp("seed")) as started:
        yield started


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for one test."""
    async with aiohttp.ClientSession() as session:
        yield session


# Seed 001 §2.2: WSMessage{type int16, seq int64, payload []byte (MessagePack)}.

def frame(type_: int, seq: int, payload: Any) -> bytes:
    """One binary frame as seed 001 §2.2.1 encodes it: the payload is MessagePack
    bytes inside the MessagePack envelope (``msgpack:"payload"`` is ``[]byte``)."""
    return msgspec.msgpack.encode({"type": type_, "seq": seq,
                                   "payload": msgspec.msgpack.encode(payload)})


class SeedSocket:
    """A seed 001 client: binary MessagePack frames on ``/ws``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seq = itertools.count(1)
        self.seen: list[tuple[int, int, dict[str, Any]]] = []  # frames skipped by expect
        self.offline: list[dict[str, Any]] = []  # messages pushed after MsgAuthRsp

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, node: SeedNode,
                   **kwargs: Any) -> SeedSocket:
        return cls(await http.ws_connect(node.ws_url, **kwargs))

    async def send(self, type_: int, payload: Any) -> int:
        seq = next(self.seq)
        await self.ws.send_bytes(frame(type_, seq, payload))
        return seq

    async def recv(self, timeout: float = 10.0) -> tuple[int, int, dict[str, Any]]:
        """The next frame: (type, seq, decoded payload). Asserts it is binary."""
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.BINARY, (msg.type, msg.data)
        envelope = msgspec.msgpack.decode(msg.data)
        raw = envelope.get("payload")
        assert isinstance(raw, bytes), envelope  # []byte, as the seed's struct says
        payload = msgspec.msgpack.decode(raw) if raw else {}
        return envelope["type"], envelope["seq"], payload

    async def expect(self, type_: int, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
        """The next frame of ``type_`` (others are kept in :attr:`seen`)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    t, seq, payload = await self.recv(timeout)
                    if t == type_:
                        return seq, payload
                    self.seen.append((t, seq, payload))
        except TimeoutError:
            raise AssertionError(f"no frame of type {type_} in {timeout} s; "
                                 f"other frames: {self.seen[-5:]}") from None

    async def login(self, user: User, device_id: str | None = None) -> dict[str, Any]:
        """MsgAuth, MsgAuthRsp, then the offline messages pushed after it (MsgSyncRsp
        pages until ``has_more`` is false); returns the MsgAuthRsp payload."""
        body = {"token": user.token}
        if device_id is not None:
            body["device_id"] = device_id
        seq = await self.send(1, body)
        got, rsp = await self.expect(101)
        assert got == seq and rsp["success"] is True, rsp
        self.offline = await self.pages()
        return rsp

    async def pages(self) -> list[dict[str, Any]]:
        """Messages of MsgSyncRsp frames up to the one with ``has_more: false``."""
        messages: list[dict[str, Any]] = []
        while True:
            _, page = await self.expect(103)
            messages += page["messages"]
            if not page["has_more"]:
                return messages

    async def close_code(self, timeout: float = 15.0) -> int | None:
        """Read until the server closes; its close code."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING):
                    return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
