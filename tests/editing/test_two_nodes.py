"""Two nodes sharing one database: the rules hold across them.

With the default ``memory://`` bus each node pushes only to its own sockets, so a
client on the other node learns the outcome from the ``connected`` snapshot or by
polling — the fallback the seed asks for. (Live pushes across nodes need a shared
bus: see docs/editing.md, "Several nodes".)
"""

from __future__ import annotations

import asyncio

import aiohttp

from tests.editing.client import Api
from tests.editing.conftest import NodeFactory


async def test_the_dialogue_across_two_nodes(node_factory: NodeFactory,
                                             http: aiohttp.ClientSession) -> None:
    one, two = await node_factory(), await node_factory()
    people = []
    for _ in range(5):
        user_id, token = await one.quick_user()
        people.append(Api(http, one.http_url, token, user_id))
    alice = people[0]
    ws = await alice.workspace()
    for p in people[1:]:
        await alice.add_member(ws, p.user_id)
    # Alice edits through node one; the others ask through node two.
    a = alice.tab(ws, 1)
    await a.start()
    a_sock = await a.connect()
    askers = [p.on(two.http_url).tab(ws, 1) for p in people[1:]]
    for tab in askers:
        started = await tab.start()
        assert started.body["editor"]["session_id"] == a.session_id
    replies = await asyncio.gather(*(t.request() for t in askers))
    winners = [r for r in replies if r.status == 201]
    assert len(winners) == 1, replies
    assert all(r.code == "TAKEOVER_PENDING" for r in replies if r.status != 201)
    request = winners[0].body["request"]
    winner = next(t for t in askers if t.session_id == request["requester"]["session_id"])

    # The editor, on node one, learns of it by polling (the push went to node two's bus).
    polled = (await a.pending()).body["requests"]
    assert [r["id"] for r in polled] == [request["id"]]
    # and from a fresh socket's snapshot on either node.
    on_two = await a.connect(two.http_url)
    assert [r["id"] for r in on_two.snapshot["pending_requests"]] == [request["id"]]
    assert (await a.respond(request["id"], approved=True)).status == 200

    # The requester, on node two, sees the approval by polling its own node.
    status = (await winner.request_status(request["id"])).body["request"]
    assert status["status"] == "approved"
    for node in (one, two):
        async with node.node.editing.db.transaction() as tx:
            locks = await tx.fetch("SELECT session_id FROM editing_locks")
        assert [r["session_id"] for r in locks] == [winner.session_id]
    # Node one answered, so its own bus carried the events to Alice's socket there.
    assert (await a_sock.next("takeover_response"))["approved"] is True
    assert (await a_sock.next("editing_ended"))["reason"] == "taken_over"
