"""tidings-client's ``get_token`` (a token at connect, ``Refresh`` before expiry, a new
token after 4402) and ``rpc()``, against a real ``tidings serve`` issuing 3-second JWTs
and forwarding ``Rpc`` to a small aiohttp backend on 127.0.0.1."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.nodes import NodeProcess
from tests.support.services import free_port
from tidings_client import (
    AuthError,
    Client,
    ClientClosedError,
    Disconnected,
    HttpClient,
    Reconnected,
    TidingsError,
)
from tidings_client.protocol.codes import CloseCode, ErrorCode

SECRET = "an-hs256-secret-of-32-bytes-min!"
PASSWORD = "correct horse battery"
TTL = 3


@pytest.fixture(scope="module")
def backend_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def jwt_node(tmp_path_factory: pytest.TempPathFactory, backend_port: int
             ) -> Iterator[NodeProcess]:
    """One node for the module issuing short JWTs, stopped (by PID) after it."""
    folder: Path = tmp_path_factory.mktemp("jwt-node")
    process = NodeProcess("jwt", folder, {"TIDINGS_JWT_SECRET": SECRET}, [
        "--database-url", f"sqlite:///{folder / 'tidings.db'}", "--jwt-ttl", str(TTL),
        "--proxy-rpc-url", f"http://127.0.0.1:{backend_port}/rpc", "--proxy-timeout", "3"])
    process.start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def backend(backend_port: int) -> AsyncIterator[list[dict[str, Any]]]:
    """The application's rpc backend: ``add`` sums, ``forbidden`` refuses."""
    calls: list[dict[str, Any]] = []

    async def rpc(request: web.Request) -> web.Response:
        body = await request.json()
        calls.append(body)
        if body["method"] == "add":
            return web.json_response({"result": {"data": {"sum": sum(body["data"])}}})
        return web.json_response({"error": {"message": f"no {body['method']} for you"}})

    app = web.Application()
    app.router.add_post("/rpc", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", backend_port).start()
    try:
        yield calls
    finally:
        await runner.cleanup()


class Tokens:
    """``get_token`` as an application writes it: refresh tokens over HTTP."""

    def __init__(self, api: HttpClient, refresh_token: str) -> None:
        self.api = api
        self.refresh_token = refresh_token
        self.calls = 0
        self.fail_while: Any = None  # a predicate: fail (as a backend outage) while true

    async def __call__(self) -> str:
        self.calls += 1
        if self.fail_while is not None and self.fail_while():
            raise RuntimeError("the auth backend is down")
        pair = await self.api.refresh_jwt(self.refresh_token)
        self.refresh_token = pair.refresh_token
        return pair.token


async def log_in(node: NodeProcess) -> tuple[HttpClient, Tokens, int]:
    api = HttpClient(node.http_url)
    name = f"j-{secrets.token_hex(4)}"
    user_id = (await api.register(name, PASSWORD)).user_id
    pair = await api.issue_jwt(name, PASSWORD)
    assert pair.token_type == "Bearer"
    return api, Tokens(api, pair.refresh_token), user_id


async def next_event(client: Client, kind: type, timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        async for event in client.events():
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the client stopped before a {kind.__name__}")


async def test_get_token_connects_and_refreshes_in_band(jwt_node: NodeProcess) -> None:
    api, tokens, user_id = await log_in(jwt_node)
    client = Client(jwt_node.ws_url, get_token=tokens, refresh_margin=1.0, ping_interval=None)
    try:
        await client.connect()
        assert client.user_id == user_id and tokens.calls == 1
        first = client.expires_at
        assert first is not None
        # Past two lifetimes of the first JWT, on one connection, refreshed in-band.
        async with asyncio.timeout(12):
            while tokens.calls < 4:
                await asyncio.sleep(0.1)
        assert client.connected and (client.expires_at or 0) > first + 1000
        assert await client.ping() >= 0
    finally:
        await client.close()
        await api.close()
    disconnects = [e async for e in client.events() if isinstance(e, Disconnected)]
    assert disconnects == []


async def test_without_get_token_an_expired_jwt_stops_the_client(jwt_node: NodeProcess) -> None:
    api = HttpClient(jwt_node.http_url)
    name = f"j-{secrets.token_hex(4)}"
    await api.register(name, PASSWORD)
    pair = await api.issue_jwt(name, PASSWORD)
    client = Client(jwt_node.ws_url, pair.token, ping_interval=None)
    try:
        await client.connect()
        gone = await next_event(client, Disconnected, timeout=10)
        assert gone.code == CloseCode.TOKEN_EXPIRED
        with pytest.raises(ClientClosedError, match="token expired") as stopped:
            await client.ping()
        assert isinstance(stopped.value.__cause__, AuthError)
    finally:
        await client.close()
        await api.close()


async def test_a_failed_refresh_ends_in_4402_and_a_reconnect_with_a_new_token(
        jwt_node: NodeProcess) -> None:
    api, tokens, _ = await log_in(jwt_node)
    client = Client(jwt_node.ws_url, get_token=tokens, refresh_margin=1.0, ping_interval=None)
    try:
        await client.connect()
        tokens.fail_while = lambda: client.connected  # in-band refreshes fail
        gone = await next_event(client, Disconnected, timeout=10)
        assert gone.code == CloseCode.TOKEN_EXPIRED
        await next_event(client, Reconnected, timeout=10)
        assert client.connected
    finally:
        await client.close()
        await api.close()


async def test_rpc_reaches_the_backend_and_returns_its_answer(
        jwt_node: NodeProcess, backend: list[dict[str, Any]]) -> None:
    api, tokens, user_id = await log_in(jwt_node)
    client = Client(jwt_node.ws_url, get_token=tokens, ping_interval=None)
    try:
        await client.connect()
        assert await client.rpc("add", [1, 2, 39]) == {"sum": 42}
        with pytest.raises(TidingsError) as refused:
            await client.rpc("forbidden")
        assert refused.value.code == ErrorCode.REFUSED_BY_BACKEND
        assert "no forbidden for you" in str(refused.value)
        assert [(c["method"], c["user_id"]) for c in backend] == [("add", user_id),
                                                                  ("forbidden", user_id)]
    finally:
        await client.close()
        await api.close()


def test_a_client_needs_a_token_or_get_token() -> None:
    with pytest.raises(ValueError, match="token or a get_token"):
        Client("ws://127.0.0.1:9/ws")
