"""Seed 002 (WebSocket协作系统, collaborative editing with takeover requests), sent as
the seed writes it, against ``tidings serve`` on SQLite and on PostgreSQL.

Sections covered:
- 4 系统集成: ``GET /api/v1/ws/editing/:session_id`` (the Hub indexes clients by
  session_id) and ``GET /api/v1/ws/sessions`` (connected sessions).
- 5 服务层: ``RequestTakeover(resourceID, requesterUserID, requesterName,
  requesterSessionID, targetSessionID)``, ``RespondToTakeover(requestID, approved)``,
  ``GetPendingRequests(targetSessionID)``, ``GetRequestStatus(requestID)``,
  ``CleanupExpiredRequests`` (expiry by the background job).
- 6 Handler: the four routes under
  ``/api/v1/workspaces/:id/resources/:resource_id/editing/``.
- 8 前端WebSocket服务: ``{type, data}`` messages on the editing socket.
- 10 EditResource集成: the polling fallback (request-status, pending-requests).
- 技术要点: states pending/approved/rejected/expired, the 30 s countdown, JWT on
  every API, same-user vs different-user.

The stricter Tidings bodies (``session_id`` on the response) keep working: tested in
tests/editing/. Differences, with reasons, are in docs/editing.md "Seed compatibility".
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.seeds.servers import SeedNode, User, http, node, running_node

__all__ = ["http", "node"]  # fixtures, imported for pytest

RESOURCE = 42


class Editing:
    """Seed 002's client: the editing routes of one workspace resource, as one user."""

    def __init__(self, http: aiohttp.ClientSession, node: SeedNode, user: User,
                 workspace_id: int, resource_id: int = RESOURCE) -> None:
        self.http, self.node, self.user = http, node, user
        self.base = (f"{node.http_url}/api/v1/workspaces/{workspace_id}"
                     f"/resources/{resource_id}/editing")

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, json=body,
                                     headers=self.user.auth) as r:
            return r.status, await r.json()

    async def start(self) -> str:
        status, body = await self.call("POST", "/start")
        assert status == 201, body
        return str(body["session_id"])

    async def socket(self, session_id: str) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(
            f"{self.node.http_url}/api/v1/ws/editing/{session_id}", headers=self.user.auth)


async def team(http: aiohttp.ClientSession, node: SeedNode) -> tuple[int, User, User]:
    """A workspace owned by Alice, with Bob as an editor."""
    alice, bob = await node.user(http), await node.user(http)
    async with http.post(node.http_url + "/api/v1/workspaces", json={"name": "iac"},
                         headers=alice.auth) as r:
        assert r.status == 201
        workspace_id = (await r.json())["id"]
    async with http.put(f"{node.http_url}/api/v1/workspaces/{workspace_id}/members/{bob.id}",
                        json={"role": "editor"}, headers=alice.auth) as r:
        assert r.status == 200
    return workspace_id, alice, bob


async def next_event(ws: aiohttp.ClientWebSocketResponse, type_: str,
                     timeout: float = 10.0) -> dict[str, Any]:
    """The next ``{type, data}`` message of ``type_`` on an editing socket."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            event = json.loads(msg.data)
            assert set(event) == {"type", "data"}, event
            if event["type"] == type_:
                return dict(event["data"])


async def scene(http: aiohttp.ClientSession, node: SeedNode
                ) -> tuple[Editing, Editing, str, str, aiohttp.ClientWebSocketResponse]:
    """Alice edits resource 42 with her socket open; Bob opened it too."""
    workspace_id, alice, bob = await team(http, node)
    a, b = Editing(http, node, alice, workspace_id), Editing(http, node, bob, workspace_id)
    es_a = await a.start()
    ws_a = await a.socket(es_a)
    await next_event(ws_a, "connected")
    es_b = await b.start()
    return a, b, es_a, es_b, ws_a


def seed_request(b: Editing, es_b: str, es_a: str) -> dict[str, Any]:
    """RequestTakeover's parameters as JSON, as seed 002 §5 names them (the
    requester's user id is a Go ``string`` there)."""
    return {"requester_user_id": str(b.user.id), "requester_name": "Bob (laptop)",
            "requester_session_id": es_b, "target_session_id": es_a}


async def test_request_with_the_seeds_parameters_reaches_the_editor(http, node) -> None:
    _a, b, es_a, es_b, ws_a = await scene(http, node)
    status, body = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
    assert status == 201, body
    request = body["request"]
    assert request["status"] == "pending"
    assert request["requester"] == {"user_id": b.user.id, "user_name": b.user.name,
                                    "session_id": es_b, "display_name": "Bob (laptop)"}
    assert request["target"]["session_id"] == es_a
    # 技术要点 "30秒倒计时": the default window is 30 s.
    assert request["expires_at"] - request["created_at"] == 30_000
    assert 0 < request["expires_in_ms"] <= 30_000
    pushed = await next_event(ws_a, "takeover_request")
    assert pushed["request"]["id"] == request["id"]
    assert pushed["request"]["requester"]["display_name"] == "Bob (laptop)"
    assert pushed["request"]["same_user"] is False  # 区分同用户/不同用户场景
    await ws_a.close()


async def test_requester_user_id_as_an_integer_too(http, node) -> None:
    _a, b, es_a, es_b, ws_a = await scene(http, node)
    body = {**seed_request(b, es_b, es_a), "requester_user_id": b.user.id}
    status, answer = await b.call("POST", "/takeover-request", body)
    assert status == 201, answer
    await ws_a.close()


async def test_requester_user_id_of_someone_else_is_refused(http, node) -> None:
    a, b, es_a, es_b, ws_a = await scene(http, node)
    body = {**seed_request(b, es_b, es_a), "requester_user_id": str(a.user.id)}
    status, answer = await b.call("POST", "/takeover-request", body)
    assert status == 403
    assert answer["error"]["code"] == "REQUESTER_MISMATCH"
    # nothing was created: the real request still goes through
    status, _ = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
    assert status == 201
    await ws_a.close()


async def test_approve_with_request_id_and_approved_alone(http, node) -> None:
    a, b, es_a, es_b, ws_a = await scene(http, node)
    ws_b = await b.socket(es_b)
    await next_event(ws_b, "connected")
    _, made = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
    request_id = made["request"]["id"]
    await next_event(ws_a, "takeover_request")
    # RespondToTakeover(requestID, approved): no session named
    status, body = await a.call("POST", "/takeover-response",
                                {"request_id": request_id, "approved": True})
    assert status == 200, body
    assert body["request"]["status"] == "approved"
    for ws in (ws_a, ws_b):
        response = await next_event(ws, "takeover_response")
        assert response["approved"] is True
        assert response["editor"]["session_id"] == es_b
        ended = await next_event(ws, "editing_ended")
        assert ended["reason"] == "taken_over" and ended["session_id"] == es_a
    status, now = await b.call("GET", "/status")
    assert now["editor"]["session_id"] == es_b
    await ws_a.close()
    await ws_b.close()


async def test_reject_with_request_id_and_approved_alone(http, node) -> None:
    a, b, es_a, es_b, ws_a = await scene(http, node)
    _, made = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
    status, body = await a.call("POST", "/takeover-response",
                                {"request_id": made["request"]["id"], "approved": False})
    assert status == 200
    assert body["request"]["status"] == "rejected"
    assert (await next_event(ws_a, "takeover_response"))["approved"] is False
    _, now = await a.call("GET", "/status")
    assert now["editor"]["session_id"] == es_a
    await ws_a.close()


async def test_answer_without_session_by_the_requester_is_409(http, node) -> None:
    _a, b, es_a, es_b, ws_a = await scene(http, node)
    _, made = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
    status, body = await b.call("POST", "/takeover-response",
                                {"request_id": made["request"]["id"], "approved": True})
    assert status == 409
    assert body["error"]["code"] == "NO_ANSWERING_SESSION"
    assert es_a in body["error"]["message"]
    await ws_a.close()


async def test_answer_without_session_between_two_own_tabs_is_409(http, node) -> None:
    workspace_id, alice, _ = await team(http, node)
    tab1 = Editing(http, node, alice, workspace_id)
    tab2 = Editing(http, node, alice, workspace_id)
    es_1, es_2 = await tab1.start(), await tab2.start()
    body = {"requester_user_id": str(alice.id), "requester_name": "Alice",
            "requester_session_id": es_2, "target_session_id": es_1}
    status, made = await tab2.call("POST", "/takeover-request", body)
    assert status == 201 and made["request"]["same_user"] is True
    status, answer = await tab2.call("POST", "/takeover-response",
                                     {"request_id": made["request"]["id"], "approved": True})
    assert status == 409
    assert answer["error"]["code"] == "SESSION_REQUIRED"
    # naming the answering tab works (the Tidings body)
    status, answer = await tab1.call("POST", "/takeover-response", {
        "request_id": made["request"]["id"], "approved": True, "session_id": es_1})
    assert status == 200 and answer["request"]["status"] == "approved"


async def test_pending_requests_by_the_seeds_parameter_name(http, node) -> None:
    a, b, es_a, es_b, ws_a = await scene(http, node)
    _, made = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
    for query in (f"?target_session_id={es_a}", f"?session_id={es_a}"):
        status, body = await a.call("GET", "/pending-requests" + query)
        assert status == 200
        assert [r["id"] for r in body["requests"]] == [made["request"]["id"]]
    await ws_a.close()


async def test_polling_fallback_without_any_socket(http, node) -> None:
    """技术要点 1: WebSocket optional, polling the fallback: neither side has a socket."""
    workspace_id, alice, bob = await team(http, node)
    a, b = Editing(http, node, alice, workspace_id), Editing(http, node, bob, workspace_id)
    es_a, es_b = await a.start(), await b.start()
    _, made = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
    request_id = made["request"]["id"]
    _, pending = await a.call("GET", f"/pending-requests?target_session_id={es_a}")
    assert [r["id"] for r in pending["requests"]] == [request_id]
    await a.call("POST", "/takeover-response", {"request_id": request_id, "approved": True})
    status, seen = await b.call("GET", f"/request-status/{request_id}")
    assert status == 200 and seen["request"]["status"] == "approved"


async def test_request_expires_after_the_window(http, node, request, tmp_path: Path) -> None:
    """状态 expired ("已超时"), announced to both sides, seen by polling."""
    with running_node(request, node.store, tmp_path, takeover_timeout=1,
                      editing_sweep_interval=0.2) as short:
        _a, b, es_a, es_b, ws_a = await scene(http, short)
        _, made = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
        expired = await next_event(ws_a, "takeover_expired", timeout=20)
        assert expired["request"]["status"] == "expired"
        assert expired["request"]["reason"] == "timeout"
        _, seen = await b.call("GET", f"/request-status/{made['request']['id']}")
        assert seen["request"]["status"] == "expired"
        await ws_a.close()


async def test_connected_sessions(http, node) -> None:
    a, b, es_a, es_b, ws_a = await scene(http, node)
    async with http.get(node.http_url + "/api/v1/ws/sessions", headers=b.user.auth) as r:
        assert r.status == 200
        listed = {s["session_id"]: s for s in (await r.json())["sessions"]}
    assert es_a in listed and es_b not in listed  # only sessions with a socket
    assert listed[es_a]["user_id"] == a.user.id
    await ws_a.close()
    # a session id the server did not issue (start) is not a session
    async with http.get(node.http_url + "/api/v1/ws/editing/es_made_up",
                        headers=b.user.auth) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "SESSION_NOT_FOUND"


async def test_ping_on_the_editing_socket(http, node) -> None:
    _, _, _, _, ws_a = await scene(http, node)
    await ws_a.send_str(json.dumps({"type": "ping"}))
    assert await next_event(ws_a, "pong") == {}
    await ws_a.close()


async def test_the_takeover_requests_table_holds_the_state(http, node) -> None:
    """1 数据库层: the ``takeover_requests`` table, statuses as the seed lists them."""
    a, b, es_a, es_b, ws_a = await scene(http, node)
    _, made = await b.call("POST", "/takeover-request", seed_request(b, es_b, es_a))
    await a.call("POST", "/takeover-response",
                 {"request_id": made["request"]["id"], "approved": False})
    sql = ("SELECT status, requester_session_id, target_session_id FROM takeover_requests "
           "WHERE id = {}").format(int(made["request"]["id"]))
    url = node.env["TIDINGS_DATABASE_URL"]
    if node.store == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            row = tuple(db.execute(sql).fetchone())
    else:
        conn = await asyncpg.connect(url)
        try:
            row = tuple(await conn.fetchrow(sql))
        finally:
            await conn.close()
    assert row == ("rejected", es_b, es_a)
    await ws_a.close()


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/takeover-request"), ("POST", "/takeover-response"),
    ("GET", "/pending-requests"), ("GET", "/request-status/1")])
async def test_every_route_needs_a_token(http, node, method, path) -> None:
    """技术要点 3: 所有API需要JWT认证."""
    url = f"{node.http_url}/api/v1/workspaces/1/resources/{RESOURCE}/editing{path}"
    async with http.request(method, url, json={}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "UNAUTHORIZED"
    async with http.get(node.http_url + "/api/v1/ws/editing/es_x") as r:
        assert r.status == 401
