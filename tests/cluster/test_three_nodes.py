"""Three ``tidings serve`` processes on one bus: chat, receipts, presence and the
connection limit across nodes; a node killed with messages in flight."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.cluster.conftest import HEARTBEAT, NODE_TIMEOUT, Cluster
from tests.support.wire import Wire
from tidings.client import (
    ChatMessage,
    Client,
    PresenceChange,
    Receipt,
    ReconnectPolicy,
)
from tidings.client import Event as ClientEvent
from tidings.protocol.codes import CloseCode, MsgType

pytestmark = pytest.mark.slow


async def next_event(client: Client, want: type, timeout: float = 10.0,
                     match=lambda e: True) -> ClientEvent:
    async with asyncio.timeout(timeout):
        async for event in client.events():
            if isinstance(event, want) and match(event):
                return event
    raise AssertionError("events ended")


async def test_three_nodes_share_chat_receipts_presence_and_the_connection_limit(
        cluster: Cluster) -> None:
    alice_id, alice_token = await cluster.register("alice")
    bob_id, bob_token = await cluster.register("bob", node=1)
    carol_id, carol_token = await cluster.register("carol", node=2)
    alice = await cluster.client(alice_token, 0, "alice-laptop")
    bob = await cluster.client(bob_token, 1, "bob-phone")
    carol = await cluster.client(carol_token, 2, "carol-desk")

    to_bob = await alice.send_chat(bob_id, "hello bob")
    to_carol = await alice.send_chat(carol_id, "hello carol")
    got = await next_event(bob, ChatMessage)
    assert (got.message_id, got.from_, got.content) == (to_bob.message_id, alice_id, "hello bob")
    got = await next_event(carol, ChatMessage)
    assert got.message_id == to_carol.message_id

    # A read receipt from node B reaches the sender on node A.
    await bob.ack(to_bob.message_id, "read")
    receipt = await next_event(alice, Receipt, match=lambda r: r.status == "read")
    assert receipt.message_ids == (to_bob.message_id,) and receipt.by == bob_id

    # Presence: carol (node C) goes away; alice, her peer on node A, is told.
    await carol.set_presence("away")
    change = await next_event(alice, PresenceChange,
                              match=lambda p: p.user_id == carol_id and p.status == "away")
    assert change.status == "away"
    # Any node answers the same about anyone: asked on node C about users on A and B.
    status, body = await cluster.get(f"/api/v1/presence?user_ids={alice_id},{carol_id}",
                                     bob_token, node=2)
    assert status == 200
    assert {p["user_id"]: p["status"] for p in body["presence"]} == {
        alice_id: "online", carol_id: "unknown"}  # carol is not bob's peer
    status, body = await cluster.get(f"/api/v1/presence?user_ids={carol_id}", alice_token,
                                     node=1)
    assert body["presence"] == [{"user_id": carol_id, "status": "away"}]

    # bob closes on node B: alice, on node A, sees him go offline.
    await bob.close()
    change = await next_event(alice, PresenceChange, match=lambda p: p.user_id == bob_id)
    assert change.status == "offline"

    await check_connection_limit(cluster)
    await check_nodes_route(cluster)


async def check_connection_limit(cluster: Cluster) -> None:
    """The limit of 3 connections per user holds across nodes."""
    _, token = await cluster.register("dora")
    await cluster.client(token, 0, "d1")
    await cluster.client(token, 1, "d2")
    third = await cluster.client(token, 2, "d3")
    assert cluster.http is not None
    for node in range(3):  # raw sockets: the SDK would retry a refusal in the background
        wire = await Wire.open(cluster.http, cluster.nodes[node].ws_url)
        await wire.send(MsgType.AUTH, {"token": token, "device_id": "d4"})
        _, rsp = await wire.expect(MsgType.AUTH_RSP)
        assert not rsp["success"] and rsp["error"].startswith("WS_TOO_MANY_CONNECTIONS")
        assert await wire.closed_with() == CloseCode.TOO_MANY_CONNECTIONS
    await third.close()
    async with asyncio.timeout(10):  # the slot is free once node C has released it
        while True:
            wire = await Wire.open(cluster.http, cluster.nodes[0].ws_url)
            await wire.send(MsgType.AUTH, {"token": token, "device_id": "d4"})
            _, rsp = await wire.expect(MsgType.AUTH_RSP)
            await wire.close()
            if rsp["success"]:
                break
            await asyncio.sleep(0.2)


async def check_nodes_route(cluster: Cluster) -> None:
    """Admins list the live nodes; others may not."""
    root = await cluster.admin_token()
    _, user = await cluster.register("mallory")
    await cluster.client(user, 1, "m1")
    # Open now: alice and d1 on A, d2 and m1 on B, carol on C (the others closed).
    expected = {cluster.nodes[0].port: 2, cluster.nodes[1].port: 2, cluster.nodes[2].port: 1}
    counts: dict[int, int] = {}
    async with asyncio.timeout(10):  # counts are as of each node's last heartbeat
        while True:
            status, body = await cluster.get("/api/v1/cluster/nodes", root, node=2)
            assert status == 200
            counts = {int(n["address"].rsplit(":", 1)[1]): n["connections"]
                      for n in body["nodes"]}
            if counts == expected:
                break
            await asyncio.sleep(HEARTBEAT)
    assert all(n["heartbeat_age_ms"] < NODE_TIMEOUT * 1000 for n in body["nodes"])
    assert {n["pid"] for n in body["nodes"]} == {n.pid for n in cluster.nodes}
    status, body = await cluster.get("/api/v1/cluster/nodes", user)
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED"




async def test_kill_9_with_messages_in_flight_loses_and_duplicates_nothing(
        cluster: Cluster) -> None:
    alice_id, alice_token = await cluster.register("alice")
    bob_id, bob_token = await cluster.register("bob")
    carol_id, carol_token = await cluster.register("carol")
    dave_id, dave_token = await cluster.register("dave")
    # Node A (index 0) dies. alice sends from it; bob has a device on it and one on B;
    # alice's tablet on C gets copies; dave is only on A and comes back slowly, so that
    # carol (on C, his peer) sees him go offline and then online again.
    alice = await cluster.client(alice_token, 0, "alice-phone")
    alice_tablet = await cluster.client(alice_token, 2, "alice-tablet")
    bob_phone = await cluster.client(bob_token, 0, "bob-phone")
    bob_laptop = await cluster.client(bob_token, 1, "bob-laptop")
    carol = await cluster.client(carol_token, 2, "carol")
    slow = ReconnectPolicy(initial_interval=NODE_TIMEOUT + 2 * HEARTBEAT + 1.0,
                           max_interval=NODE_TIMEOUT + 3.0)
    dave = await cluster.client(dave_token, 0, "dave", policy=slow)
    await dave.send_chat(carol_id, "hi carol")
    await next_event(carol, ChatMessage)

    received: dict[str, list[int]] = {"bob-phone": [], "bob-laptop": [], "alice-tablet": []}

    async def collect(name: str, client: Client) -> None:
        async for event in client.events():
            if isinstance(event, ChatMessage) and event.from_ == alice_id:
                received[name].append(event.message_id)

    collectors = [asyncio.create_task(collect(n, c)) for n, c in
                  (("bob-phone", bob_phone), ("bob-laptop", bob_laptop),
                   ("alice-tablet", alice_tablet))]
    presence: list[str] = []

    async def watch_dave() -> None:
        async for event in carol.events():
            if isinstance(event, PresenceChange) and event.user_id == dave_id:
                presence.append(event.status)

    watcher = asyncio.create_task(watch_dave())
    total, killed_after = 300, 60
    acked: list[int] = []

    async def send(i: int) -> None:
        ack = await alice.send_chat(bob_id, f"m{i}")
        acked.append(ack.message_id)

    try:
        rng = random.Random(4)
        pending: set[asyncio.Task[None]] = set()
        for i in range(total):
            pending.add(asyncio.create_task(send(i)))
            if len(pending) >= 20:  # keep ~20 chats in flight
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            if i == killed_after:
                in_flight = sum(not t.done() for t in pending)
                cluster.nodes[0].kill()
            if rng.random() < 0.1:
                await asyncio.sleep(0.01)
        async with asyncio.timeout(60):
            await asyncio.gather(*pending)
        assert in_flight > 0  # chats were sent and not yet acknowledged when A died
        assert len(acked) == total and len(set(acked)) == total
        async with asyncio.timeout(60):
            while any(sorted(set(ids)) != sorted(acked) for ids in received.values()):
                await asyncio.sleep(0.2)
        for name, ids in received.items():
            assert ids == sorted(acked), f"{name}: duplicates or out of order"
        # dave's node died: carol sees him offline (lease expired), then online (back).
        async with asyncio.timeout(NODE_TIMEOUT * 4 + 10):
            while presence[-2:] != ["offline", "online"]:
                await asyncio.sleep(0.1)
    finally:
        for task in (*collectors, watcher):
            task.cancel()
