"""The rules and every refusal: who may do what, malformed input, the lock constraint."""

from __future__ import annotations

import aiohttp
import pytest

from tests.editing.client import Api
from tests.support.server import RunningServer


async def test_takeover_rules(node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, bob, carol, _) = team
    a, b, c = alice.tab(ws, 1), bob.tab(ws, 1), carol.tab(ws, 1)
    lonely = bob.tab(ws, 2)
    await a.start()
    await b.start()
    await c.start()
    await lonely.start()  # alone on resource 2: it is its editor

    own = await a.request()
    assert (own.status, own.code) == (409, "SELF_TAKEOVER")
    other_resource = await lonely.request()
    assert (other_resource.status, other_resource.code) == (409, "SELF_TAKEOVER")
    wrong_target = await b.request(target=c.session_id)
    assert (wrong_target.status, wrong_target.code) == (409, "TARGET_NOT_EDITOR")
    assert wrong_target.body["error"]["editor"]["session_id"] == a.session_id

    # Somebody else's session cannot be used to ask.
    stolen = await carol.call(
        "POST", f"/api/v1/workspaces/{ws}/resources/1/editing/takeover-request",
        {"requester_session_id": b.session_id})
    assert (stolen.status, stolen.code) == (404, "SESSION_NOT_FOUND")
    # Nor a session of another resource.
    elsewhere = await bob.call(
        "POST", f"/api/v1/workspaces/{ws}/resources/1/editing/takeover-request",
        {"requester_session_id": lonely.session_id})
    assert (elsewhere.status, elsewhere.code) == (404, "SESSION_NOT_FOUND")

    request = (await b.request()).body["request"]
    # Only the targeted editing session answers: not the requester, not a bystander.
    for tab in (b, c):
        refused = await tab.respond(request["id"], approved=True)
        assert (refused.status, refused.code) in ((403, "NOT_TARGET"), (404, "REQUEST_NOT_FOUND"))
    # A bystander cannot even see it.
    assert (await c.request_status(request["id"])).code == "REQUEST_NOT_FOUND"
    assert (await a.request_status(request["id"])).status == 200
    assert (await a.request_status(999999)).code == "REQUEST_NOT_FOUND"
    # The pending request is found under its own resource only.
    assert (await lonely.request_status(request["id"])).code == "REQUEST_NOT_FOUND"
    # Alice's other tab does not answer for her editing tab.
    a2 = alice.tab(ws, 1)
    await a2.start()
    assert (await a2.respond(request["id"], approved=True)).code == "NOT_TARGET"
    assert (await a.respond(request["id"], approved=True)).status == 200

    # Nobody editing (the editor left): ask to start instead.
    again = bob.tab(ws, 3)
    await again.start()
    other = carol.tab(ws, 3)
    await other.start()
    await again.end()
    nobody = await other.request()
    assert (nobody.status, nobody.code) == (409, "NO_EDITOR")


async def test_workspace_permissions(node: RunningServer, users: object) -> None:
    alice, bob, carol, dave = await users(4)  # type: ignore[operator]
    ws = await alice.workspace("docs")
    await alice.add_member(ws, bob.user_id, "editor")
    await alice.add_member(ws, carol.user_id, "viewer")
    prefix = f"/api/v1/workspaces/{ws}/resources/1/editing"

    viewer = await carol.call("POST", prefix + "/start")
    assert (viewer.status, viewer.code) == (403, "READ_ONLY")
    assert (await carol.call("GET", prefix + "/status")).status == 200
    stranger = await dave.call("POST", prefix + "/start")
    assert (stranger.status, stranger.code) == (403, "NOT_A_MEMBER")
    assert (await dave.call("GET", prefix + "/status")).code == "NOT_A_MEMBER"
    missing = await alice.call("POST", "/api/v1/workspaces/424242/resources/1/editing/start")
    assert (missing.status, missing.code) == (404, "WORKSPACE_NOT_FOUND")

    # Only the owner manages members; roles are editor or viewer.
    assert (await bob.call("PUT", f"/api/v1/workspaces/{ws}/members/{dave.user_id}",
                           {"role": "editor"})).code == "NOT_OWNER"
    assert (await alice.call("PUT", f"/api/v1/workspaces/{ws}/members/{dave.user_id}",
                             {"role": "owner"})).status == 422
    assert (await alice.call("PUT", f"/api/v1/workspaces/{ws}/members/{alice.user_id}",
                             {"role": "viewer"})).status == 409
    assert (await alice.call("PUT", f"/api/v1/workspaces/{ws}/members/999999",
                             {"role": "viewer"})).code == "USER_NOT_FOUND"
    members = (await bob.call("GET", f"/api/v1/workspaces/{ws}/members")).body["members"]
    assert [(m["user_id"], m["role"]) for m in members] == [
        (alice.user_id, "owner"), (bob.user_id, "editor"), (carol.user_id, "viewer")]
    assert (await dave.call("GET", f"/api/v1/workspaces/{ws}/members")).code == "NOT_A_MEMBER"
    listed = (await carol.call("GET", "/api/v1/workspaces")).body["workspaces"]
    assert [(w["id"], w["name"], w["role"]) for w in listed] == [(ws, "docs", "viewer")]
    assert (await dave.call("GET", "/api/v1/workspaces")).body == {"workspaces": []}

    # A member demoted to viewer can no longer take over or heartbeat an editing session.
    tab = bob.tab(ws, 1)
    await tab.start()
    await alice.add_member(ws, bob.user_id, "viewer")
    assert (await tab.heartbeat()).code == "READ_ONLY"
    assert (await tab.request()).code == "READ_ONLY"


@pytest.mark.parametrize(("method", "what", "body", "status", "code"), [
    ("POST", "/takeover-request", {}, 422, "INVALID_BODY"),
    ("POST", "/takeover-request", {"requester_session_id": "nope"}, 422, "INVALID_BODY"),
    ("POST", "/takeover-request", {"requester_session_id": "es_" + "a" * 20, "x": 1}, 422,
     "INVALID_BODY"),
    ("POST", "/takeover-response", {"request_id": 0, "approved": True,
                                    "session_id": "es_" + "a" * 20}, 422, "INVALID_BODY"),
    ("POST", "/takeover-response", {"request_id": 1, "approved": "yes",
                                    "session_id": "es_" + "a" * 20}, 422, "INVALID_BODY"),
    ("POST", "/heartbeat", None, 400, "BAD_JSON"),
    ("POST", "/end", {"session_id": 5}, 422, "INVALID_BODY"),
    ("GET", "/pending-requests", None, 400, "BAD_PARAMETER"),
    ("GET", "/request-status/abc", None, 400, "BAD_PARAMETER"),
    ("GET", "/request-status/99999999999999999999", None, 400, "BAD_PARAMETER"),
    ("GET", "/request-status/0", None, 400, "BAD_PARAMETER"),
])
async def test_malformed_requests_get_documented_codes(
        node: RunningServer, team: tuple[int, list[Api]], method: str, what: str,
        body: object, status: int, code: str) -> None:
    ws, (alice, *_) = team
    reply = await alice.tab(ws, 1).call(method, what, body)
    assert (reply.status, reply.code) == (status, code), reply


async def test_paths_and_tokens(node: RunningServer, team: tuple[int, list[Api]],
                                http: aiohttp.ClientSession) -> None:
    ws, (alice, *_) = team
    bad_ws = await alice.call("POST", "/api/v1/workspaces/x/resources/1/editing/start")
    assert (bad_ws.status, bad_ws.code) == (400, "BAD_PARAMETER")
    bad_res = await alice.call("POST", f"/api/v1/workspaces/{ws}/resources/-3/editing/start")
    assert (bad_res.status, bad_res.code) == (400, "BAD_PARAMETER")
    anonymous = Api(http, node.http_url, "tdg_" + "x" * 43, 0)
    for path in ("/api/v1/workspaces", f"/api/v1/workspaces/{ws}/resources/1/editing/status",
                 "/api/v1/ws/sessions"):
        reply = await anonymous.call("GET", path)
        assert (reply.status, reply.code) == (401, "UNAUTHORIZED")
    async with http.get(node.http_url + "/api/v1/workspaces") as r:
        assert r.status == 401
    assert (await alice.call("POST", "/api/v1/workspaces", {"name": ""})).status == 422


async def test_the_database_refuses_a_second_editor(
        node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, bob, *_) = team
    a, b = alice.tab(ws, 1), bob.tab(ws, 1)
    await a.start()
    await b.start()
    with pytest.raises(Exception) as caught:  # either driver's unique-violation error
        async with node.node.editing.db.transaction() as tx:
            await tx.fetch("INSERT INTO editing_locks (workspace_id, resource_id, session_id,"
                           " acquired_at) VALUES ($1, 1, $2, 0)", ws, b.session_id)
    assert "unique" in str(caught.value).lower() or "duplicate" in str(caught.value).lower()
    async with node.node.editing.db.transaction() as tx:
        rows = await tx.fetch("SELECT session_id FROM editing_locks")
    assert [r["session_id"] for r in rows] == [a.session_id]
