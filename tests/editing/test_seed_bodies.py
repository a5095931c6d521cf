"""Seed 002's own request bodies (issue 15): ``requester_user_id`` and ``requester_name``
on takeover-request, takeover-response without ``session_id``, ``target_session_id`` on
pending-requests. In process; tests/seeds/test_seed002.py sends them to ``tidings serve``.
"""

from __future__ import annotations

from tests.editing.client import Tab


async def editor_and_requester(team) -> tuple[Tab, Tab]:
    workspace_id, (alice, bob, *_) = team
    a, b = alice.tab(workspace_id, 1), bob.tab(workspace_id, 1)
    await a.start()
    await b.start()
    return a, b


async def test_requester_fields_of_the_seed(team) -> None:
    a, b = await editor_and_requester(team)
    body = {"requester_session_id": b.session_id, "requester_user_id": str(b.api.user_id),
            "requester_name": "Bob"}
    wrong = await b.call("POST", "/takeover-request",
                         {**body, "requester_user_id": a.api.user_id})
    assert wrong.status == 403 and wrong.code == "REQUESTER_MISMATCH"
    bad = await b.call("POST", "/takeover-request", {**body, "requester_user_id": "x1"})
    assert bad.status == 422
    made = await b.call("POST", "/takeover-request", body)
    assert made.status == 201
    assert made.body["request"]["requester"]["display_name"] == "Bob"
    listed = await a.call("GET", "/pending-requests",
                          params={"target_session_id": a.session_id})
    assert [r["id"] for r in listed.body["requests"]] == [made.body["request"]["id"]]


async def test_answer_without_session_id(team) -> None:
    a, b = await editor_and_requester(team)
    made = (await b.request()).body["request"]
    refused = await b.call("POST", "/takeover-response",
                           {"request_id": made["id"], "approved": True})
    assert refused.status == 409 and refused.code == "NO_ANSWERING_SESSION"
    answered = await a.call("POST", "/takeover-response",
                            {"request_id": made["id"], "approved": True})
    assert answered.status == 200 and answered.body["request"]["status"] == "approved"


async def test_answer_without_session_id_between_own_tabs(team) -> None:
    workspace_id, (alice, *_) = team
    one, two = alice.tab(workspace_id, 2), alice.tab(workspace_id, 2)
    await one.start()
    await two.start()
    made = (await two.request()).body["request"]
    refused = await one.call("POST", "/takeover-response",
                             {"request_id": made["id"], "approved": False})
    assert refused.status == 409 and refused.code == "SESSION_REQUIRED"
    assert (await one.respond(made["id"], approved=False)).status == 200
