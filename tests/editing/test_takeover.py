"""The takeover dialogue of seed 002 end to end: real HTTP, real WebSockets, one node,
on SQLite and on PostgreSQL."""

from __future__ import annotations

from tests.editing.client import Api
from tests.support.server import RunningServer


async def editors_of(node: RunningServer, workspace_id: int, resource_id: int) -> list[str]:
    """The lock rows of a resource, read straight from the database."""
    async with node.node.editing.db.transaction() as tx:
        rows = await tx.fetch("SELECT session_id FROM editing_locks "
                              "WHERE workspace_id = $1 AND resource_id = $2",
                              workspace_id, resource_id)
    return [r["session_id"] for r in rows]


async def test_approval_moves_the_lock_and_tells_both_sides(
        node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, bob, *_) = team
    a, b = alice.tab(ws, 7), bob.tab(ws, 7)
    first = await a.start()
    assert first.body["editing"] is True
    assert first.body["editor"]["session_id"] == a.session_id
    assert first.body["editor"]["same_user"] is True
    second = await b.start()
    assert second.body["editing"] is False
    assert second.body["editor"] == {"session_id": a.session_id, "user_id": alice.user_id,
                                     "user_name": first.body["editor"]["user_name"],
                                     "since": first.body["editor"]["since"],
                                     "same_user": False}
    a_sock, b_sock = await a.connect(), await b.connect()
    assert a_sock.snapshot["editing"] is True and b_sock.snapshot["editing"] is False

    made = await b.request(target=a.session_id)
    assert made.status == 201, made
    request = made.body["request"]
    assert request["status"] == "pending" and request["same_user"] is False
    assert request["requester"]["session_id"] == b.session_id
    assert request["target"] == {"user_id": alice.user_id, "user_name": request["target"][
        "user_name"], "session_id": a.session_id}
    assert 25_000 < request["expires_in_ms"] <= 30_000

    pushed = await a_sock.next("takeover_request")
    assert pushed["request"]["id"] == request["id"]
    assert pushed["request"]["requester"]["user_id"] == bob.user_id

    answer = await a.respond(request["id"], approved=True)
    assert answer.status == 200, answer
    assert answer.body["request"]["status"] == "approved"
    assert await editors_of(node, ws, 7) == [b.session_id]

    to_bob = await b_sock.next("takeover_response")
    assert to_bob["approved"] is True
    assert to_bob["editor"]["session_id"] == b.session_id
    to_alice = await a_sock.next("takeover_response")
    assert to_alice["request"]["id"] == request["id"]
    ended = await a_sock.next("editing_ended")
    assert ended["reason"] == "taken_over" and ended["session_id"] == a.session_id
    assert ended["editor"]["session_id"] == b.session_id

    status = await a.status()
    assert status.body["editor"]["session_id"] == b.session_id
    assert status.body["pending_request"] is None
    # Alice's tab is no longer the editor: her heartbeat says so.
    beat = await a.heartbeat()
    assert beat.body["editing"] is False
    assert beat.body["editor"]["user_id"] == bob.user_id
    # Bob's socket never saw a takeover_request: it was for the editor only.
    assert b_sock.count("takeover_request") == 0


async def test_rejection_leaves_the_lock_where_it_was(
        node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, bob, *_) = team
    a, b = alice.tab(ws, 1), bob.tab(ws, 1)
    await a.start()
    await b.start()
    a_sock, b_sock = await a.connect(), await b.connect()
    request = (await b.request()).body["request"]
    await a_sock.next("takeover_request")
    answer = await a.respond(request["id"], approved=False)
    assert answer.body["request"]["status"] == "rejected"
    to_bob = await b_sock.next("takeover_response")
    assert to_bob["approved"] is False and to_bob["editor"] is None
    assert await editors_of(node, ws, 1) == [a.session_id]
    again = await a.respond(request["id"], approved=True)
    assert (again.status, again.code) == (409, "REQUEST_NOT_PENDING")
    assert again.body["error"]["request_status"] == "rejected"
    assert await editors_of(node, ws, 1) == [a.session_id]
    # A new request is allowed once the previous one is answered.
    assert (await b.request()).status == 201


async def test_same_user_in_another_tab_is_marked(
        node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, *_) = team
    tab1, tab2 = alice.tab(ws, 3), alice.tab(ws, 3)
    await tab1.start()
    second = await tab2.start()
    assert second.body["editing"] is False and second.body["editor"]["same_user"] is True
    sock1 = await tab1.connect()
    request = (await tab2.request()).body["request"]
    assert request["same_user"] is True
    assert (await sock1.next("takeover_request"))["request"]["same_user"] is True
    # Only the editing tab answers, even for the same user.
    wrong = await tab2.respond(request["id"], approved=True)
    assert (wrong.status, wrong.code) == (403, "NOT_TARGET")
    assert (await tab1.respond(request["id"], approved=True)).status == 200
    assert await editors_of(node, ws, 3) == [tab2.session_id]


async def test_ending_the_editing_session_frees_the_lock(
        node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, bob, carol, _) = team
    a, b, c = alice.tab(ws, 4), bob.tab(ws, 4), carol.tab(ws, 4)
    for tab in (a, b, c):
        await tab.start()
    b_sock, c_sock = await b.connect(), await c.connect()
    request = (await b.request()).body["request"]
    ended = await a.end()
    assert ended.body == {"ended": True, "was_editing": True}
    expired = await b_sock.next("takeover_expired")
    assert expired["request"]["id"] == request["id"]
    assert expired["request"]["reason"] == "editor_left"
    for sock in (b_sock, c_sock):
        gone = await sock.next("editing_ended")
        assert gone["reason"] == "ended" and gone["editor"] is None
    assert await editors_of(node, ws, 4) == []
    assert (await b.request_status(request["id"])).body["request"]["status"] == "expired"
    # The session is gone: heartbeats and sockets for it are refused.
    assert (await a.heartbeat()).code == "SESSION_NOT_FOUND"
    # A fresh start takes the free lock.
    assert (await bob.tab(ws, 4).start()).body["editing"] is True


async def test_the_lock_can_go_back_and_forth(
        node: RunningServer, team: tuple[int, list[Api]]) -> None:
    ws, (alice, bob, *_) = team
    a, b = alice.tab(ws, 9), bob.tab(ws, 9)
    await a.start()
    await b.start()
    holder, other = a, b
    for _ in range(5):
        request = (await other.request()).body["request"]
        assert (await holder.respond(request["id"], approved=True)).status == 200
        assert await editors_of(node, ws, 9) == [other.session_id]
        holder, other = other, holder
