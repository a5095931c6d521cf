"""Seed 003 (M-SYNC 消息代理服务: publishing over HTTP with unified access tokens,
real-time delivery to desktop WebSocket clients), against ``tidings serve`` on SQLite
and on PostgreSQL.

The seed is a plan: it names components (AuthenticationService, TokenController,
the auth middleware, MessageBrokerService, WebSocketService) and what they do, but
no paths or field names. Each capability it lists is sent here through the Tidings
route that provides it (docs/protocol.md "Seed compatibility" maps them):

- Phase 2/3 统一Token认证: register and login; TokenController's create, view, update,
  revoke, batch revoke and current-token info; device information; permission control
  (scopes); 灵活的Token传输方式 (``Authorization: Bearer`` and ``X-API-Token``).
- 安全要求 "JWT + API Token 双重认证": an HS256 JWT and an opaque token both work.
- Phase 4 消息代理核心服务: publish, validation (size, body), per-user routing,
  history, statistics.
- Phase 5 WebSocket 实时服务: a desktop client subscribed over ``/ws`` receives what
  a script publishes over HTTP, in order; a revoked token's connection is closed.
- Phase 6 健康检查: ``GET /api/health``.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import aiohttp
import jwt

from tests.seeds.servers import JWT_SECRET, SeedNode, SeedSocket, User, http, node
from tests.support.nodes import TIDINGS

__all__ = ["http", "node"]  # fixtures, imported for pytest

Subscribe, Publication = 10, 111


async def call(http: aiohttp.ClientSession, node: SeedNode, method: str, path: str,
               headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    async with http.request(method, node.http_url + path, json=body, headers=headers) as r:
        return r.status, await r.json()


async def desktop(http: aiohttp.ClientSession, node: SeedNode, token: str,
                  channel: str) -> SeedSocket:
    """A desktop client: authenticated on /ws and subscribed to ``channel``."""
    sock = await SeedSocket.open(http, node)
    await sock.login(User(0, "", token))
    seq = await sock.send(Subscribe, {"channel": channel})
    got, _ = await sock.expect(110)
    assert got == seq
    return sock


def admin_token(node: SeedNode, name: str) -> str:
    """A token with the admin scope, made by the operator's CLI (only an admin grants it)."""
    result = subprocess.run([TIDINGS, "token", "create", "--user", name, "--scopes", "admin"],
                            env={**node.env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                            text=True, timeout=60, check=True)
    return next(w for w in result.stdout.split() if w.startswith("tdg_"))


async def test_register_login_and_health(http, node) -> None:
    user = await node.user(http)
    assert user.token.startswith("tdg_")
    async with http.get(node.http_url + "/api/health") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "ok"


async def test_token_management(http, node) -> None:
    user = await node.user(http)
    status, made = await call(http, node, "POST", "/api/v1/tokens", user.auth, {
        "name": "ci publisher", "scopes": ["publish:room:*"], "expires_in": 86400,
        "device_info": {"platform": "linux", "app_version": "1.2"}})
    assert status == 201
    assert made["token"].startswith("tdg_") and made["status"] == "active"
    assert made["device_info"] == {"platform": "linux", "app_version": "1.2"}
    token_id = made["id"]
    status, seen = await call(http, node, "GET", f"/api/v1/tokens/{token_id}", user.auth)
    assert status == 200 and "token" not in seen  # shown once
    status, changed = await call(http, node, "PATCH", f"/api/v1/tokens/{token_id}",
                                 user.auth, {"name": "renamed"})
    assert status == 200 and changed["name"] == "renamed"
    status, listed = await call(http, node, "GET", "/api/v1/tokens", user.auth)
    assert token_id in [t["id"] for t in listed["tokens"]]
    status, current = await call(http, node, "GET", "/api/v1/tokens/current",
                                 {"X-API-Token": made["token"]})
    assert status == 200 and current["id"] == token_id and current["kind"] == "token"
    _, other = await call(http, node, "POST", "/api/v1/tokens", user.auth, {"name": "b"})
    status, batch = await call(http, node, "POST", "/api/v1/tokens/revoke", user.auth,
                               {"ids": [token_id, other["id"]]})
    assert status == 200 and sorted(batch["revoked"]) == sorted([token_id, other["id"]])
    status, _ = await call(http, node, "GET", "/api/v1/tokens/current",
                           {"X-API-Token": made["token"]})
    assert status == 401


async def test_scopes_control_publishing(http, node) -> None:
    user = await node.user(http)
    _, scoped = await call(http, node, "POST", "/api/v1/tokens", user.auth,
                           {"scopes": ["publish:room:ops"]})
    headers = {"Authorization": f"Bearer {scoped['token']}"}
    status, _ = await call(http, node, "POST", "/api/v1/publish", headers,
                           {"channel": "room:ops", "data": "ok"})
    assert status == 200
    status, refused = await call(http, node, "POST", "/api/v1/publish", headers,
                                 {"channel": "room:other", "data": "no"})
    assert status == 403 and refused["error"]["code"] == "PERMISSION_DENIED"


async def test_http_publish_reaches_desktop_clients_in_real_time(http, node) -> None:
    publisher, reader = await node.user(http), await node.user(http)
    channel = f"room:sync{reader.id}"
    sock = await desktop(http, node, reader.token, channel)
    sent_at = []
    for i in range(5):
        sent_at.append(time.monotonic())
        headers = {"X-API-Token": publisher.token} if i % 2 else publisher.auth
        status, ack = await call(http, node, "POST", "/api/v1/publish", headers,
                                 {"channel": channel, "type": "note", "data": {"n": i}})
        assert status == 200 and ack["offset"] == i + 1
    for i in range(5):
        _, pub = await sock.expect(Publication)
        assert (pub["offset"], pub["type"], pub["data"]) == (i + 1, "note", {"n": i})
        assert pub["info"]["user_id"] == publisher.id
    await sock.close()


async def test_jwt_and_api_token_both_authenticate(http, node) -> None:
    user = await node.user(http)
    token = jwt.encode({"sub": str(user.id), "exp": int(time.time()) + 600}, JWT_SECRET,
                       algorithm="HS256")
    channel = f"room:jwt{user.id}"
    sock = await desktop(http, node, token, channel)  # a JWT on the WebSocket too
    status, _ = await call(http, node, "POST", "/api/v1/publish",
                           {"Authorization": f"Bearer {token}"}, {"channel": channel, "data": 1})
    assert status == 200
    _, pub = await sock.expect(Publication)
    assert pub["data"] == 1
    await sock.close()


async def test_validation(http, node) -> None:
    user = await node.user(http)
    status, body = await call(http, node, "POST", "/api/v1/publish", user.auth,
                              {"channel": "room:v", "data": "x" * 70_000})
    assert status == 413 and body["error"]["code"] == "PUBLICATION_TOO_LARGE"
    status, body = await call(http, node, "POST", "/api/v1/publish", user.auth,
                              {"channel": "room:v"})
    assert status == 422 and body["error"]["code"] == "INVALID_BODY"
    status, body = await call(http, node, "POST", "/api/v1/publish", {}, {"channel": "room:v",
                                                                          "data": 1})
    assert status == 401


async def test_user_routing_history_and_statistics(http, node) -> None:
    reader = await node.user(http)
    admin = admin_token(node, reader.name)
    headers = {"Authorization": f"Bearer {admin}"}
    inbox = await desktop(http, node, reader.token, f"user:{reader.id}")
    status, routed = await call(http, node, "POST", "/api/v1/publish", headers,
                                {"user_ids": [reader.id], "data": {"alert": "disk"}})
    assert status == 200 and len(routed["results"]) == 1
    _, pub = await inbox.expect(Publication)
    assert pub["data"] == {"alert": "disk"}
    await inbox.close()
    status, history = await call(http, node, "GET",
                                 f"/api/v1/channels/user:{reader.id}/history", reader.auth)
    assert status == 200 and [p["data"] for p in history["publications"]] == [
        {"alert": "disk"}]
    status, stats = await call(http, node, "GET", "/api/v1/stats", headers)
    assert status == 200 and stats["publications"]["total"] >= 1


async def test_revoking_a_token_closes_its_connection(http, node) -> None:
    user = await node.user(http)
    _, made = await call(http, node, "POST", "/api/v1/tokens", user.auth, {"name": "desk"})
    sock = await desktop(http, node, made["token"], f"room:r{user.id}")
    status, _ = await call(http, node, "DELETE", f"/api/v1/tokens/{made['id']}", user.auth)
    assert status == 200
    async with asyncio.timeout(15):
        assert await sock.close_code() == 4403
