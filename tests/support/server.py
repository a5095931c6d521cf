"""A real Tidings node in the test's event loop, on a free port, plus helpers
for tests that talk to it over real sockets."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp

from tidings.config import Settings
from tidings.protocol.codes import CloseCode
from tidings.server import Server

_names = itertools.count(1)


class RunningServer:
    """A started :class:`Server` and an HTTP session to reach it."""

    def __init__(self, database_url: str, **overrides: Any) -> None:
        settings = Settings(port=0, database_url=database_url, **overrides)
        self.node = Server(settings)
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> RunningServer:
        await self.node.start()
        self.http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        await self.node.stop()

    @property
    def http_url(self) -> str:
        return self.node.url

    @property
    def ws_url(self) -> str:
        return self.node.url.replace("http://", "ws://") + "/ws"

    async def new_user(self, name: str | None = None, *,
                       device_id: str | None = None) -> tuple[int, str]:
        """Register a user and log in; return (user_id, token)."""
        assert self.http is not None
        name = name or f"user{next(_names)}"
        body = {"username": name, "password": "correct horse"}
        async with self.http.post(self.http_url + "/api/v1/auth/register", json=body) as r:
            assert r.status == 201, await r.text()
        if device_id:
            body["device_id"] = device_id
        async with self.http.post(self.http_url + "/api/v1/auth/login", json=body) as r:
            assert r.status == 200, await r.text()
            data = await r.json()
        return data["user_id"], data["token"]

    async def quick_user(self) -> tuple[int, str]:
        """A user and token straight from the store: no argon2 (~0.3 s a user), for
        tests that need many users."""
        user = await self.node.store.create_user(f"quick{next(_names)}", "!no-password")
        token, _ = await self.node.service.auth.issue(user.id)
        return user.id, token

    async def drop_connections(self, user_id: int, code: int = CloseCode.GOING_AWAY) -> int:
        """Close every connection of a user from the server side; return how many."""
        conns = self.node.hub.connections(user_id)
        for conn in conns:
            conn.close(code, "dropped by test")
        return len(conns)
