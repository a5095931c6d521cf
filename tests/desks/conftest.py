"""Fixtures for the desk map: a node with a small demo building, tokens, a real
Node ``socket.io-client`` (installed from npm on first use) and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import http, server, server_factory  # noqa: F401  (the real node)
from tests.support.server import RunningServer
from tests.support.services import RedisServer
from tidings.apps.desks.demo import load_demo

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def socketio_client_dir() -> Path:
    """``tests/desks/node`` with its pinned ``socket.io-client`` installed (``npm ci``)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed: apt-get install nodejs npm")
    if not (NODE_DIR / "node_modules" / "socket.io-client" / "package.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True, timeout=300)
    return NODE_DIR


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the run."""
    with RedisServer() as redis:
        yield redis


class DeskNode:
    """A running node with demo data and two users' tokens."""

    def __init__(self, node: RunningServer, tokens: list[str], user_ids: list[int]) -> None:
        self.node = node
        self.tokens = tokens
        self.user_ids = user_ids

    @property
    def url(self) -> str:
        return self.node.http_url

    def headers(self, who: int = 0) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(self, method: str, path: str, who: int = 0, **kwargs: Any
                   ) -> tuple[int, Any]:
        assert self.node.http is not None
        async with self.node.http.request(method, self.url + path, headers=self.headers(who),
                                          **kwargs) as r:
            return r.status, await r.json()


async def settle(node: RunningServer) -> None:
    """Wait until the node has delivered every change it was told of (on PostgreSQL
    the demo load's NOTIFYs arrive after it returns)."""
    app = node.node.desks
    heard = -1
    async with asyncio.timeout(10):
        while app.pending or (app.feed is not None and app.feed.received != heard):
            heard = app.feed.received if app.feed is not None else 0
            await asyncio.sleep(0.2)


async def make_desk_node(node: RunningServer, *, load: bool = True) -> DeskNode:
    """Load 2 floors of 12 desks (unless ``load`` is false) and make two users."""
    if load:
        await load_demo(node.node.desks.db, floors=2, desks_per_floor=12)
        await settle(node)
    users = [await node.quick_user() for _ in range(2)]
    return DeskNode(node, [t for _, t in users], [u for u, _ in users])


@pytest.fixture
async def desks(server: RunningServer) -> DeskNode:  # noqa: F811
    """A node (SQLite and PostgreSQL) with the demo building loaded."""
    return await make_desk_node(server)


class SocketIoClient:
    """``node listen.mjs``: the real socket.io-client, one JSON line per event."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []

    async def next(self, match: Callable[[dict[str, Any]], bool],
                   timeout: float = 10.0) -> dict[str, Any]:
        """The next line ``match`` accepts (earlier ones are kept in ``seen``)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"client exited; saw {self.seen}")
                event = json.loads(line)
                self.seen.append(event)
                if match(event):
                    return event

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def of_type(name: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    """Match an event by name and fields of its ``payload.data``."""
    def match(event: dict[str, Any]) -> bool:
        if event.get("event") != name:
            return False
        got = event["payload"]["data"]
        return all(got.get(k) == v for k, v in data.items())
    return match


@pytest.fixture
async def socketio_client(socketio_client_dir: Path
                          ) -> AsyncIterator[Callable[..., Any]]:
    """``await socketio_client(url, token, {"floor": 1})`` → a joined client."""
    clients: list[SocketIoClient] = []

    async def start(url: str, token: str, rooms: dict[str, Any] | None,
                    joined: bool = True) -> SocketIoClient:
        proc = await asyncio.create_subprocess_exec(
            "node", str(socketio_client_dir / "listen.mjs"), url, token,
            json.dumps(rooms or {}), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        client = SocketIoClient(proc)
        clients.append(client)
        if joined:
            event = await client.next(lambda e: e["event"] in ("joined", "connect_error"))
            assert event["event"] == "joined" and event["ack"]["ok"], event
        return client

    yield start
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()
