"""A test client of the editing API: one user's tab, over real HTTP and WebSockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class Reply:
    """An HTTP answer: status and decoded JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body

    @property
    def code(self) -> str | None:
        return self.body.get("error", {}).get("code") if isinstance(self.body, dict) else None

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r})"


class Api:
    """A user's token against one node."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str, user_id: int) -> None:
        self.http = http
        self.base = base
        self.token = token
        self.user_id = user_id

    def on(self, base: str) -> Api:
        """The same user against another node."""
        return Api(self.http, base, self.token, self.user_id)

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Reply:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.request(method, self.base + path, json=body, headers=headers,
                                     **kwargs) as r:
            text = await r.text()
            return Reply(r.status, json.loads(text) if text else None)

    async def workspace(self, name: str = "ws") -> int:
        reply = await self.call("POST", "/api/v1/workspaces", {"name": name})
        assert reply.status == 201, reply
        return int(reply.body["id"])

    async def add_member(self, workspace_id: int, user_id: int, role: str = "editor") -> None:
        reply = await self.call("PUT", f"/api/v1/workspaces/{workspace_id}/members/{user_id}",
                                {"role": role})
        assert reply.status == 200, reply

    def tab(self, workspace_id: int, resource_id: int) -> Tab:
        return Tab(self, workspace_id, resource_id)


class Tab:
    """One editing session (a browser tab) of a user on one resource."""

    def __init__(self, api: Api, workspace_id: int, resource_id: int) -> None:
        self.api = api
        self.workspace_id = workspace_id
        self.resource_id = resource_id
        self.session_id = ""
        self.socket: Socket | None = None

    @property
    def prefix(self) -> str:
        return (f"/api/v1/workspaces/{self.workspace_id}/resources/{self.resource_id}"
                "/editing")

    async def call(self, method: str, what: str, body: Any = None, **kwargs: Any) -> Reply:
        return await self.api.call(method, self.prefix + what, body, **kwargs)

    async def start(self) -> Reply:
        reply = await self.call("POST", "/start")
        assert reply.status == 201, reply
        self.session_id = reply.body["session_id"]
        return reply

    async def request(self, target: str | None = None) -> Reply:
        body: dict[str, Any] = {"requester_session_id": self.session_id}
        if target is not None:
            body["target_session_id"] = target
        return await self.call("POST", "/takeover-request", body)

    async def respond(self, request_id: int, approved: bool) -> Reply:
        return await self.call("POST", "/takeover-response", {
            "request_id": request_id, "approved": approved, "session_id": self.session_id})

    async def pending(self) -> Reply:
        return await self.call("GET", "/pending-requests",
                               params={"session_id": self.session_id})

    async def request_status(self, request_id: int) -> Reply:
        return await self.call("GET", f"/request-status/{request_id}")

    async def status(self) -> Reply:
        return await self.call("GET", "/status")

    async def heartbeat(self) -> Reply:
        return await self.call("POST", "/heartbeat", {"session_id": self.session_id})

    async def end(self) -> Reply:
        return await self.call("POST", "/end", {"session_id": self.session_id})

    async def connect(self, base: str | None = None) -> Socket:
        """Open the session's WebSocket (on ``base``'s node) and read ``connected``."""
        url = (base or self.api.base).replace("http://", "ws://")
        ws = await self.api.http.ws_connect(
            f"{url}/api/v1/ws/editing/{self.session_id}",
            headers={"Authorization": f"Bearer {self.api.token}"})
        self.socket = Socket(ws)
        self.socket.snapshot = await self.socket.next("connected")
        return self.socket


class Socket:
    """An editing WebSocket: events in arrival order, all kept in :attr:`seen`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.snapshot: dict[str, Any] = {}

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        event: dict[str, Any] = json.loads(msg.data)
        self.seen.append(event)
        return event

    async def next(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        """The data of the next event of this type (others are kept in ``seen``)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.recv(timeout)
                if event["type"] == type_:
                    return dict(event["data"])

    async def drain(self, quiet: float = 0.5) -> list[dict[str, Any]]:
        """Every event arriving until ``quiet`` seconds pass without one."""
        got = []
        while True:
            try:
                got.append(await self.recv(quiet))
            except TimeoutError:
                return got

    def count(self, type_: str) -> int:
        return sum(1 for e in self.seen if e["type"] == type_)

    async def close(self) -> None:
        await self.ws.close()
