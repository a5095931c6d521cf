"""Two nodes on one PostgreSQL database and one PostgreSQL bus: the whole takeover
dialogue between two users on two different nodes, every push live."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.editing.client import Api
from tests.support.server import RunningServer
from tests.support.services import PostgresServer


@pytest.fixture
async def two_nodes(postgres_server: PostgresServer
                    ) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Two nodes on a fresh PostgreSQL database, which is also their bus."""
    name = f"t_{secrets.token_hex(8)}"
    url = postgres_server.create_database(name)
    nodes = []
    try:
        for _ in range(2):
            nodes.append(await RunningServer(url, bus_url=url, takeover_timeout=2.0,
                                             editing_sweep_interval=0.2).start())
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            await node.stop()
        postgres_server.drop_database(name)


async def test_two_users_on_two_nodes_run_the_whole_dialogue(
        two_nodes: tuple[RunningServer, RunningServer], http: aiohttp.ClientSession) -> None:
    one, two = two_nodes
    alice_id, alice_token = await one.quick_user()
    bob_id, bob_token = await one.quick_user()
    alice = Api(http, one.http_url, alice_token, alice_id)
    bob = Api(http, two.http_url, bob_token, bob_id)  # Bob talks to node two only
    ws = await alice.workspace()
    await alice.add_member(ws, bob.user_id)
    a, b = alice.tab(ws, 1), bob.tab(ws, 1)
    await a.start()
    await b.start()
    a_sock, b_sock = await a.connect(), await b.connect()

    # Rejected: pushed to Alice on node one, answer pushed to Bob on node two.
    first = (await b.request()).body["request"]
    assert (await a_sock.next("takeover_request"))["request"]["id"] == first["id"]
    await a.respond(first["id"], approved=False)
    assert (await b_sock.next("takeover_response"))["approved"] is False

    # Expired: both sides told once, whichever node's job claimed it.
    second = (await b.request()).body["request"]
    await a_sock.next("takeover_request")
    assert (await a_sock.next("takeover_expired", timeout=8))["request"]["id"] == second["id"]
    assert (await b_sock.next("takeover_expired", timeout=8))["request"]["id"] == second["id"]

    # Approved: the lock moves, both sides learn it live.
    third = (await b.request()).body["request"]
    await a_sock.next("takeover_request")
    await a.respond(third["id"], approved=True)
    assert (await b_sock.next("takeover_response"))["editor"]["session_id"] == b.session_id
    assert (await a_sock.next("editing_ended"))["reason"] == "taken_over"
    await a_sock.drain(0.5)
    await b_sock.drain(0.5)
    for sock in (a_sock, b_sock):
        assert sock.count("takeover_expired") == 1
        assert sock.count("takeover_response") == 2
    assert a_sock.count("takeover_request") == 3 and b_sock.count("takeover_request") == 0
    for node in (one, two):
        assert node.node.editing is not None
        async with node.node.editing.db.transaction() as tx:
            locks = await tx.fetch("SELECT session_id FROM editing_locks")
        assert [r["session_id"] for r in locks] == [b.session_id]
