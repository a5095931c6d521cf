"""Seed 001 §8 end to end, through real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.wire import Wire
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType

pytestmark = pytest.mark.asyncio


async def test_chat_is_acknowledged_then_pushed_to_the_recipient(server, connect):
    alice_id, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await connect(alice_token)
    bob = await connect(bob_token)
    ack = await alice.chat(bob_id, "hello bob")
    assert ack["message_id"] >= 1 and ack["created_at"] > 0
    _, push = await bob.expect(MsgType.CHAT_PUSH)
    assert push == {"message_id": ack["message_id"], "from": alice_id, "to": bob_id,
                    "type": "text", "content": "hello bob", "created_at": ack["created_at"],
                    "status": "sent"}


async def test_text_framing_is_answered_in_json(server, connect):
    _, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await connect(alice_token, binary=False)
    bob = await connect(bob_token, binary=True)
    ack = await alice.chat(bob_id, "über 🙂")
    _, push = await bob.expect(MsgType.CHAT_PUSH)
    assert push["content"] == "über 🙂" and push["message_id"] == ack["message_id"]


async def test_message_ids_increase_strictly(server, connect):
    _, token = await server.new_user()
    bob_id, _ = await server.new_user()
    alice = await connect(token)
    ids = [(await alice.chat(bob_id, f"m{i}"))["message_id"] for i in range(10)]
    assert ids == sorted(set(ids))


async def test_unknown_recipient_is_an_error_and_the_connection_stays(server, connect):
    _, token = await server.new_user()
    alice = await connect(token)
    seq = await alice.send(MsgType.CHAT, {"to": 999_999, "type": "text", "content": "x"})
    got, err = await alice.expect(MsgType.ERROR)
    assert got == seq and err["code"] == ErrorCode.USER_NOT_FOUND
    await alice.send(MsgType.PING)
    await alice.expect(MsgType.PONG)


async def test_offline_messages_wait_and_arrive_on_connect(server, connect):
    _, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await connect(alice_token)
    sent = [(await alice.chat(bob_id, f"offline {i}"))["message_id"] for i in range(5)]
    bob = await connect(bob_token)
    assert [m["message_id"] for m in bob.replayed] == sent
    assert [m["content"] for m in bob.replayed] == [f"offline {i}" for i in range(5)]


async def test_backlog_larger_than_a_page_arrives_in_pages(server_factory, http):
    server = await server_factory(sync_page_size=7)
    _, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await Wire.ready(http, server.ws_url, alice_token)
    sent = [(await alice.chat(bob_id, str(i)))["message_id"] for i in range(20)]
    bob = await Wire.open(http, server.ws_url)
    await bob.auth(bob_token)
    pages = []
    while True:
        _, page = await bob.expect(MsgType.SYNC_RSP)
        pages.append(page)
        if not page["has_more"]:
            break
    assert [len(p["messages"]) for p in pages] == [7, 7, 6]
    assert [m["message_id"] for p in pages for m in p["messages"]] == sent


async def test_each_device_gets_exactly_what_it_missed(server, connect):
    _, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await connect(alice_token)
    phone = await connect(bob_token, "phone")
    laptop = await connect(bob_token, "laptop")
    first = (await alice.chat(bob_id, "one"))["message_id"]
    for device in (phone, laptop):
        _, push = await device.expect(MsgType.CHAT_PUSH)
        assert push["message_id"] == first
    await phone.send(MsgType.ACK, {"message_id": first, "status": "delivered"})
    await asyncio.sleep(0.2)  # let the cursor write land before the phone leaves
    await phone.close()
    await laptop.close()
    second = (await alice.chat(bob_id, "two"))["message_id"]
    third = (await alice.chat(bob_id, "three"))["message_id"]
    phone = await connect(bob_token, "phone")
    laptop = await connect(bob_token, "laptop")
    tablet = await connect(bob_token, "tablet")
    assert [m["message_id"] for m in phone.replayed] == [second, third]
    assert [m["message_id"] for m in laptop.replayed] == [first, second, third]
    assert [m["message_id"] for m in tablet.replayed] == [first, second, third]


async def test_sender_other_devices_get_a_copy_but_not_the_sending_device(server, connect):
    _, alice_token = await server.new_user()
    bob_id, _ = await server.new_user()
    desk = await connect(alice_token, "desk")
    phone = await connect(alice_token, "phone")
    ack = await desk.chat(bob_id, "from the desk")
    _, copy = await phone.expect(MsgType.CHAT_PUSH)
    assert copy["message_id"] == ack["message_id"] and copy["to"] == bob_id
    await desk.send(MsgType.PING)
    t, _, _ = await desk.recv()
    assert t == MsgType.PONG


async def test_same_seq_after_reconnect_returns_the_same_message(server, connect):
    _, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await connect(alice_token, "a1")
    first = await alice.chat(bob_id, "only once", seq=41)
    await alice.close()
    alice = await connect(alice_token, "a1")
    again = await alice.chat(bob_id, "only once", seq=41)
    assert again == first
    bob = await connect(bob_token)
    assert [m["content"] for m in bob.replayed] == ["only once"]


async def test_reusing_a_seq_for_other_content_is_a_conflict(server, connect):
    _, alice_token = await server.new_user()
    bob_id, _ = await server.new_user()
    alice = await connect(alice_token, "a1")
    await alice.chat(bob_id, "first", seq=7)
    await alice.send(MsgType.CHAT, {"to": bob_id, "type": "text", "content": "other"}, seq=7)
    seq, err = await alice.expect(MsgType.ERROR)
    assert seq == 7 and err["code"] == ErrorCode.SEQ_CONFLICT


async def test_acks_move_status_forward_and_send_receipts(server, connect, http):
    alice_id, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await connect(alice_token)
    bob = await connect(bob_token)
    m1 = (await alice.chat(bob_id, "a"))["message_id"]
    m2 = (await alice.chat(bob_id, "b"))["message_id"]
    for _ in range(2):
        await bob.expect(MsgType.CHAT_PUSH)
    await bob.send(MsgType.ACK, {"message_id": m2, "status": "delivered"})
    _, receipt = await alice.expect(MsgType.RECEIPT_PUSH)
    assert receipt == {"message_ids": [m1, m2], "status": "delivered", "by": bob_id}
    await bob.send(MsgType.ACK, {"message_id": m1, "status": "read"})
    _, receipt = await alice.expect(MsgType.RECEIPT_PUSH)
    assert receipt == {"message_ids": [m1], "status": "read", "by": bob_id}
    await bob.send(MsgType.ACK, {"message_id": m1, "status": "delivered"})  # never backwards
    await asyncio.sleep(0.2)
    headers = {"Authorization": f"Bearer {alice_token}"}
    async with http.get(f"{server.http_url}/api/v1/messages?peer={bob_id}",
                        headers=headers) as r:
        statuses = {m["message_id"]: m["status"] for m in (await r.json())["messages"]}
    assert statuses == {m1: "read", m2: "delivered"}
    assert alice_id != bob_id


async def test_ack_of_a_message_never_delivered_here_is_refused(server, connect):
    _, token = await server.new_user()
    alice = await connect(token)
    seq = await alice.send(MsgType.ACK, {"message_id": 12345, "status": "delivered"})
    got, err = await alice.expect(MsgType.ERROR)
    assert got == seq and err["code"] == ErrorCode.MESSAGE_NOT_FOUND


async def test_sync_request_returns_pages_after_the_given_id(server_factory, http):
    server = await server_factory(sync_page_size=3)
    _, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await Wire.ready(http, server.ws_url, alice_token)
    ids = [(await alice.chat(bob_id, str(i)))["message_id"] for i in range(5)]
    bob = await Wire.ready(http, server.ws_url, bob_token)
    seq = await bob.send(MsgType.SYNC_REQ, {"last_message_id": ids[1], "last_sync_time": 0})
    got, page = await bob.expect(MsgType.SYNC_RSP)
    assert got == seq and page["has_more"] is True
    assert [m["message_id"] for m in page["messages"]] == ids[2:5]


async def test_presence_goes_to_peers_online_away_offline(server, connect):
    alice_id, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    _, stranger_token = await server.new_user()
    alice = await connect(alice_token)
    await alice.chat(bob_id, "now we are peers")
    stranger = await connect(stranger_token)
    bob = await connect(bob_token)
    _, push = await alice.expect(MsgType.PRESENCE_PUSH, skip=(MsgType.RECEIPT_PUSH,))
    assert push == {"user_id": bob_id, "status": "online"}
    await bob.send(MsgType.PRESENCE, {"status": "away"})
    _, push = await alice.expect(MsgType.PRESENCE_PUSH)
    assert push == {"user_id": bob_id, "status": "away"}
    await bob.close()
    _, push = await alice.expect(MsgType.PRESENCE_PUSH)
    assert push == {"user_id": bob_id, "status": "offline"}
    await stranger.send(MsgType.PING)
    while (frame := await stranger.recv())[0] != MsgType.PONG:
        assert frame[2]["user_id"] not in (alice_id, bob_id), "a stranger saw a non-peer"


async def test_fourth_connection_of_a_user_is_refused(server, http, connect):
    _, token = await server.new_user()
    held = [await connect(token, f"d{i}") for i in range(3)]
    fourth = await Wire.open(http, server.ws_url)
    await fourth.send(MsgType.AUTH, {"token": token})
    _, rsp = await fourth.expect(MsgType.AUTH_RSP)
    assert rsp["success"] is False and ErrorCode.TOO_MANY_CONNECTIONS in rsp["error"]
    assert await fourth.closed_with() == CloseCode.TOO_MANY_CONNECTIONS
    await held[0].close()
    await asyncio.sleep(0.1)
    await connect(token, "d3")


async def test_two_hundred_connections_exchange_messages_none_lost_or_duplicated(server, http):
    users = [await server.quick_user() for _ in range(100)]
    wires: list[Wire] = []
    for _, token in users:
        for device in ("a", "b"):
            wire = await Wire.ready(http, server.ws_url, token, device)
            wires.append(wire)
    per_sender = 5

    async def send_all(i: int) -> list[int]:
        wire = wires[2 * i]
        peer = users[(i + 1) % len(users)][0]
        return [(await wire.chat(peer, f"{i}:{n}"))["message_id"] for n in range(per_sender)]

    sent = await asyncio.gather(*(send_all(i) for i in range(len(users))))

    async def receive(wire: Wire, expected: int) -> list[int]:
        got = [p["message_id"] for p in wire.skipped_pushes if p["to"] == wire.user_id]
        while len(got) < expected:
            t, _, payload = await wire.recv(timeout=10)
            if t == MsgType.CHAT_PUSH and payload["to"] == wire.user_id:
                got.append(payload["message_id"])
        return got

    received = await asyncio.gather(*(receive(w, per_sender) for w in wires))
    for i, got in enumerate(received):
        sender = (i // 2 - 1) % len(users)
        assert got == sent[sender], f"connection {i} got {got}, expected {sent[sender]}"
    await asyncio.gather(*(w.close() for w in wires))


async def test_connect_and_close_updates_the_connection_count(server, connect, http):
    _, token = await server.new_user()
    wire = await connect(token)
    async with http.get(server.http_url + "/api/health") as r:
        assert (await r.json())["connections"] == 1
    await wire.close()
    await asyncio.sleep(0.1)
    async with http.get(server.http_url + "/api/health") as r:
        assert (await r.json())["connections"] == 0


async def test_server_shutdown_closes_with_going_away(server_factory, http):
    server = await server_factory()
    _, token = await server.new_user()
    wire = await Wire.ready(http, server.ws_url, token)
    reading = asyncio.ensure_future(wire.closed_with())  # a live client is always reading
    await asyncio.sleep(0.05)
    await server.node.stop()
    server.node.stop = _noop  # already stopped; the fixture must not stop it twice
    assert await reading == CloseCode.GOING_AWAY


async def _noop() -> None:
    return None


async def test_connection_uses_aiohttp_client_directly(server):
    """The endpoint is plain RFC 6455: any client library connects."""
    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
        await ws.send_str('{"type":6,"seq":3}')
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT
        assert '"code":"WS_NOT_AUTHENTICATED"' in msg.data
