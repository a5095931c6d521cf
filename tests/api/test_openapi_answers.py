"""Real answers match the OpenAPI document: a live node (SQLite and PostgreSQL) is called
on nearly every operation, and each JSON answer is validated against the schema the
document gives for its status, strictly (an undocumented field fails, as does a missing
one). This is what keeps the described shapes of handlers that build dicts true."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import aiohttp
import jsonschema
import pytest

from tests.e2e.conftest import ServerFactory
from tests.support.server import RunningServer
from tidings.api import openapi
from tidings.protocol.codes import MsgType
from tidings.protocol.messages import AuthPayload

JSON = "application/json"


def strict(node: Any) -> Any:
    """Every object schema with properties refuses other properties."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


class Checker:
    """Calls a node and validates each answer against the document."""

    def __init__(self, node: RunningServer, http: aiohttp.ClientSession) -> None:
        self.node, self.http = node, http
        self.doc = openapi.document(node.node.app)
        self.components = strict(copy.deepcopy(self.doc["components"]))
        self.templates = [(re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", p) + "$"), p)
                          for p in self.doc["paths"]]
        self.seen: set[tuple[str, str]] = set()

    def template(self, path: str) -> str:
        found = [t for regex, t in self.templates if regex.match(path)]
        # The most literal template wins (/api/v1/tokens/current over /api/v1/tokens/{id}).
        return min(found, key=lambda t: t.count("{"))

    async def call(self, method: str, path: str, status: int, token: str | None = None,
                   **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.node.http_url + path, headers=headers,
                                     **kwargs) as r:
            body = await r.json() if r.content_type == JSON else await r.text()
            assert r.status == status, (method, path, r.status, body)
            content_type = r.content_type
        template = self.template(path.split("?")[0])
        op = self.doc["paths"][template][method.lower()]
        answer = op["responses"][str(status)]
        if content_type == JSON:
            schema = answer["content"][JSON]["schema"]
            jsonschema.validate(body, {**schema, "components": self.components},
                                cls=jsonschema.Draft202012Validator)
        else:
            media = answer.get("content", {})
            assert content_type in media, (method, path, content_type)
        self.seen.add((method, template))
        return body


@pytest.fixture
async def checker(server_factory: ServerFactory) -> Checker:
    node = await server_factory(admin_users=["root"])
    http = aiohttp.ClientSession()
    try:
        yield Checker(node, http)
    finally:
        await http.close()


async def test_core_tokens_channels_admin(checker: Checker) -> None:
    c, node = checker, checker.node
    await c.call("GET", "/api/health", 200)
    await c.call("GET", "/metrics", 200)
    await c.call("GET", "/api/openapi.json", 200)
    await c.call("GET", "/api/asyncapi.json", 200)
    creds = {"username": "root", "password": "correct horse"}
    root = await c.call("POST", "/api/v1/auth/register", 201, json=creds)
    token = (await c.call("POST", "/api/v1/auth/login", 200, json=creds))["token"]
    error = await c.call("POST", "/api/v1/auth/register", 409, json=creds)
    assert error["error"]["code"] == "USERNAME_TAKEN"
    await c.call("POST", "/api/v1/auth/login", 422, json={"username": "root"})
    bob_id, bob = await node.new_user("bob")
    admin, _ = await node.node.service.auth.issue(root["user_id"], scopes=("admin",))

    async with c.http.ws_connect(node.ws_url) as ws:  # one stored chat, for history
        from tidings.protocol.codec import encode_frame

        await ws.send_bytes(encode_frame(MsgType.AUTH, 1, AuthPayload(bob), binary=True))
        await ws.send_bytes(encode_frame(MsgType.CHAT, 2, {"to": root["user_id"],
                                                           "type": "text", "content": "hi"},
                                         binary=True))
        deadline = time.monotonic() + 10
        while not (await c.call("GET", f"/api/v1/messages?peer={bob_id}", 200, token))[
                "messages"]:
            assert time.monotonic() < deadline
        await c.call("GET", f"/api/v1/presence?user_ids={bob_id},{root['user_id']},99", 200,
                     token)
        await c.call("GET", "/api/v1/channels/room:lobby/presence", 200, token)
    await c.call("GET", "/api/v1/messages?peer=x", 400, token)
    await c.call("GET", "/api/v1/messages?peer=1", 401)
    await c.call("GET", "/api/v1/users/bob", 200, token)
    await c.call("GET", "/api/v1/users/nobody", 404, token)
    await c.call("GET", f"/api/v1/users?ids={bob_id},{root['user_id']}", 200, token)

    made = await c.call("POST", "/api/v1/tokens", 201, token,
                        json={"name": "ci", "scopes": ["publish:room:*"],
                              "device_info": {"platform": "linux"}})
    await c.call("GET", "/api/v1/tokens", 200, token)
    await c.call("GET", "/api/v1/tokens/current", 200, token)
    await c.call("GET", "/api/v1/tokens/current", 200, made["token"])
    await c.call("GET", f"/api/v1/tokens/{made['id']}", 200, token)
    await c.call("POST", "/api/v1/tokens", 403, made["token"], json={})
    await c.call("PATCH", f"/api/v1/tokens/{made['id']}", 200, token, json={"name": "ci2"})
    await c.call("DELETE", f"/api/v1/tokens/{made['id']}", 200, token)
    await c.call("POST", "/api/v1/tokens/revoke", 200, token, json={"ids": [made["id"]]})
    await c.call("GET", "/api/v1/tokens/999999", 404, token)

    await c.call("POST", "/api/v1/publish", 200, token,
                 json={"channel": "room:lobby", "data": {"text": "hello"}})
    await c.call("POST", "/api/v1/publish", 200, admin, json={"user_ids": [bob_id], "data": 1})
    await c.call("POST", "/api/v1/publish/batch", 200, token, json={"items": [
        {"channel": "room:lobby", "data": 2}, {"channel": "broadcast:all", "data": 3}]})
    await c.call("POST", "/api/v1/publish", 404, token, json={"channel": "nope:x", "data": 1})
    await c.call("GET", "/api/v1/channels/room:lobby/history?since=0", 200, token)
    await c.call("GET", "/api/v1/channels/news/presence", 404, token)
    await c.call("GET", "/api/v1/stats", 200, admin)
    await c.call("GET", "/api/v1/stats", 403, token)
    await c.call("GET", "/api/v1/cluster/nodes", 200, admin)
    await c.call("GET", "/api/v1/admin/overview", 200, token)
    await c.call("GET", "/api/v1/admin/overview", 403, bob)
    for page in ("/", "/demo/chat", "/api/docs", "/static/api-docs.js"):
        await c.call("GET", page, 200)


async def test_desks_and_organisation(checker: Checker) -> None:
    c = checker
    _, token = await c.node.new_user()
    await c.call("GET", "/api/v1/desks/me", 200, token)
    building = await c.call("POST", "/api/v1/org/buildings", 201, token, json={"name": "HQ"})
    floor = await c.call("POST", "/api/v1/org/floors", 201, token,
                         json={"building_id": building["id"], "floor_number": 1})
    dept = await c.call("POST", "/api/v1/org/departments", 201, token,
                        json={"name": "Engineering"})
    person = await c.call("POST", "/api/v1/org/employees", 201, token,
                          json={"name": "Ada", "department_id": dept["id"]})
    for table, row in (("buildings", building), ("floors", floor), ("departments", dept),
                       ("employees", person)):
        await c.call("GET", f"/api/v1/org/{table}", 200, token)
        await c.call("GET", f"/api/v1/org/{table}/{row['id']}", 200, token)
        await c.call("GET", f"/api/v1/org/{table}/999999", 404, token)
    await c.call("PUT", f"/api/v1/org/employees/{person['id']}", 200, token,
                 json={"email": "ada@example.org"})
    await c.call("DELETE", f"/api/v1/org/employees/{person['id']}", 200, token)

    desk = await c.call("POST", "/api/workstations", 201, token, json={
        "name": "A-1", "x_position": 10, "y_position": 20, "floor_id": floor["id"],
        "department_id": dept["id"], "equipment": ["monitor"]})
    one = f"/api/workstations/{desk['id']}"
    await c.call("GET", "/api/workstations?limit=10", 200, token)
    await c.call("GET", "/api/workstations/stats", 200, token)
    await c.call("GET", one, 200, token)
    await c.call("PUT", one, 200, token, json={"notes": "by the window"})
    await c.call("POST", one + "/occupy", 200, token)
    await c.call("POST", one + "/occupy", 409, token)
    await c.call("POST", one + "/release", 200, token)
    now = int(time.time() * 1000)
    reserved = await c.call("POST", one + "/reserve", 201, token,
                            json={"start": now + 3_600_000, "end": now + 7_200_000})
    await c.call("DELETE", f"{one}/reservations/{reserved['booking']['id']}", 200, token)
    await c.call("GET", one + "/logs", 200, token)
    await c.call("GET", "/api/desks?dept=Engineering", 200, token)
    await c.call("GET", "/api/desks?dept=Nobody", 404, token)
    await c.call("GET", f"/api/map?floor_id={floor['id']}", 200, token)
    await c.call("POST", "/api/database/sync", 200, token)
    await c.call("GET", "/api/metrics", 200)
    await c.call("DELETE", one, 200, token)
    await c.call("GET", one, 404, token)


async def test_editing(checker: Checker) -> None:
    c = checker
    _, alice = await c.node.new_user()
    bob_id, bob = await c.node.new_user()
    space = await c.call("POST", "/api/v1/workspaces", 201, alice, json={"name": "Docs"})
    await c.call("GET", "/api/v1/workspaces", 200, alice)
    await c.call("PUT", f"/api/v1/workspaces/{space['id']}/members/{bob_id}", 200, alice,
                 json={"role": "editor"})
    await c.call("GET", f"/api/v1/workspaces/{space['id']}/members", 200, alice)
    base = f"/api/v1/workspaces/{space['id']}/resources/7/editing"
    mine = await c.call("POST", base + "/start", 201, alice)
    theirs = await c.call("POST", base + "/start", 201, bob)
    await c.call("POST", base + "/heartbeat", 200, alice,
                 json={"session_id": mine["session_id"]})
    await c.call("GET", base + "/status", 200, bob)
    asked = await c.call("POST", base + "/takeover-request", 201, bob,
                         json={"requester_session_id": theirs["session_id"]})
    await c.call("GET", base + "/status", 200, alice)
    await c.call("GET", f"{base}/pending-requests?session_id={mine['session_id']}", 200, alice)
    await c.call("GET", f"{base}/request-status/{asked['request']['id']}", 200, bob)
    async with c.http.ws_connect(f"{c.node.ws_url}/editing/{mine['session_id']}?token={alice}"
                                 .replace("/ws/editing", "/api/v1/ws/editing")) as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "connected"
        await c.call("GET", "/api/v1/ws/sessions", 200, alice)
    await c.call("POST", base + "/takeover-response", 200, alice,
                 json={"request_id": asked["request"]["id"], "approved": True,
                       "session_id": mine["session_id"]})
    await c.call("POST", base + "/end", 200, bob, json={"session_id": theirs["session_id"]})
    await c.call("POST", base + "/end", 404, bob, json={"session_id": "es_" + "x" * 20})
