"""Expiry exactly once, concurrent requests, and the background job raced by several
nodes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.editing.client import Api
from tests.editing.conftest import NodeFactory
from tests.support.server import RunningServer
from tidings.apps.editing.db import open_editing_db
from tidings.apps.editing.service import EditingService
from tidings.bus.base import EditingEvent, Event
from tidings.bus.memory import MemoryBus


async def test_expiry_is_announced_once_to_both_sides(
        node_factory: NodeFactory, http: object) -> None:
    node = await node_factory(takeover_timeout=1.0, editing_sweep_interval=0.2)
    api = [await _api(node, http) for _ in range(2)]
    alice, bob = api
    ws = await alice.workspace()
    await alice.add_member(ws, bob.user_id)
    a, b = alice.tab(ws, 5), bob.tab(ws, 5)
    await a.start()
    await b.start()
    a_sock, b_sock = await a.connect(), await b.connect()
    request = (await b.request()).body["request"]
    await a_sock.next("takeover_request")
    to_alice = await a_sock.next("takeover_expired", timeout=5)
    to_bob = await b_sock.next("takeover_expired", timeout=5)
    for event in (to_alice, to_bob):
        assert event["request"]["id"] == request["id"]
        assert event["request"]["status"] == "expired"
        assert event["request"]["reason"] == "timeout"
    # Several more sweeps run: nothing is announced a second time.
    await asyncio.sleep(1.0)
    await a_sock.drain(0.3)
    await b_sock.drain(0.3)
    assert a_sock.count("takeover_expired") == 1
    assert b_sock.count("takeover_expired") == 1
    # The lock stayed with the editor; a late answer is refused.
    assert (await a.status()).body["editor"]["session_id"] == a.session_id
    late = await a.respond(request["id"], approved=True)
    assert (late.status, late.code) == (409, "REQUEST_NOT_PENDING")
    assert (await b.request_status(request["id"])).body["request"]["status"] == "expired"


async def _api(node: RunningServer, http: object) -> Api:
    user_id, token = await node.quick_user()
    return Api(http, node.http_url, token, user_id)  # type: ignore[arg-type]


async def test_an_answer_after_the_deadline_expires_the_request_instead(
        node_factory: NodeFactory, http: object) -> None:
    # The sweeper is far away: the answer itself notices the deadline.
    node = await node_factory(takeover_timeout=0.5, editing_sweep_interval=3600)
    alice, bob = await _api(node, http), await _api(node, http)
    ws = await alice.workspace()
    await alice.add_member(ws, bob.user_id)
    a, b = alice.tab(ws, 1), bob.tab(ws, 1)
    await a.start()
    await b.start()
    b_sock = await b.connect()
    request = (await b.request()).body["request"]
    await asyncio.sleep(0.7)
    late = await a.respond(request["id"], approved=True)
    assert (late.status, late.code) == (409, "REQUEST_NOT_PENDING")
    assert late.body["error"]["request_status"] == "expired"
    assert (await b_sock.next("takeover_expired"))["request"]["id"] == request["id"]
    assert (await a.status()).body["editor"]["session_id"] == a.session_id
    await b_sock.drain(0.3)
    assert b_sock.count("takeover_expired") == 1


async def test_concurrent_requests_leave_exactly_one_pending(
        node: RunningServer, users: Callable[[int], Awaitable[list[Api]]]) -> None:
    people = await users(9)
    owner = people[0]
    ws = await owner.workspace()
    for p in people[1:]:
        await owner.add_member(ws, p.user_id)
    editor = owner.tab(ws, 11)
    await editor.start()
    tabs = [p.tab(ws, 11) for p in people[1:]]
    for tab in tabs:
        await tab.start()
    for _ in range(3):  # three rounds, each with eight requests at once
        replies = await asyncio.gather(*(t.request() for t in tabs))
        won = [r for r in replies if r.status == 201]
        assert len(won) == 1, replies
        winner = won[0].body["request"]["id"]
        for lost in (r for r in replies if r.status != 201):
            assert (lost.status, lost.code) == (409, "TAKEOVER_PENDING"), lost
            assert lost.body["error"]["pending_request_id"] == winner
        pending = (await editor.pending()).body["requests"]
        assert [r["id"] for r in pending] == [winner]
        assert (await editor.respond(winner, approved=False)).status == 200


async def test_the_background_job_expires_each_request_once_across_nodes(
        node: RunningServer, team: tuple[int, list[Api]], store_url: str) -> None:
    """Six services on their own connections (six nodes' sweepers) race for the same
    expired requests: each request is claimed, and announced, by exactly one."""
    ws, people = team
    request_ids = []
    for resource_id, (holder, asker) in enumerate(
            [(people[0], people[1]), (people[1], people[2]), (people[2], people[3])], 100):
        h, a = holder.tab(ws, resource_id), asker.tab(ws, resource_id)
        await h.start()
        await a.start()
        request_ids.append((await a.request()).body["request"]["id"])
    # Only the racers below sweep: stop the node's own job, then make the requests due.
    await node.node.editing.close_sweeper()
    async with node.node.editing.db.transaction() as tx:
        await tx.fetch("UPDATE takeover_requests SET expires_at = 0")
    announced: list[Event] = []
    services = []
    for _ in range(6):
        bus = MemoryBus()
        await bus.start(announced.append)
        services.append(EditingService(open_editing_db(store_url), bus,
                                       takeover_timeout=30, session_ttl=60))
    try:
        results = await asyncio.gather(*(s.cleanup_expired_requests() for s in services))
    finally:
        for s in services:
            await s.db.close()
    by_sweepers = sum(expired for expired, _ in results)
    async with node.node.editing.db.transaction() as tx:
        rows = await tx.fetch("SELECT id, status FROM takeover_requests ORDER BY id")
    assert [(r["id"], r["status"]) for r in rows] == [(i, "expired") for i in request_ids]
    ids = [e.data["request"]["id"] for e in announced if isinstance(e, EditingEvent)]
    # Each request claimed by exactly one racer and announced once, to both sides.
    assert by_sweepers == len(request_ids)
    assert sorted(ids) == request_ids
    assert all(len(set(e.session_ids)) == 2 for e in announced if isinstance(e, EditingEvent))
