"""The client's own behaviour, proven against a real node (on SQLite and on PostgreSQL).

Reconnects, re-sent chats, de-duplication, acks, keepalive, presence and
shutdown, with faults injected around the real server rather than by faking it:

* the network: :class:`~tests.support.proxy.Proxy` between client and node
  stalls, cuts or refuses connections, and keeps the client's URL across a
  server restart;
* the server: ``server.drop_connections(user_id, code)`` closes a user's
  connections with a chosen close code; tokens are revoked in the real store;
* the client's end of the socket: :class:`~tests.client.tap.Tap` wraps the
  SDK's own transport to record frames and lose a ``ChatAck`` or the client's acks.

Every wait is bounded (EventReader timeouts, ``asyncio.wait_for``, ``eventually``).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.client.helpers import (
    DROPPED,
    MakeClient,
    MakeReader,
    chats,
    cursor_is,
    eventually,
    has_content,
    is_a,
    is_chat,
    two_users,
    without_presence,
)
from tests.client.tap import Tap
from tests.support.proxy import Proxy
from tests.support.server import RunningServer
from tidings.client import (
    AuthError,
    ChatAck,
    ChatMessage,
    ClientClosedError,
    ConnectionLostError,
    Disconnected,
    PresenceChange,
    Receipt,
    Reconnected,
    ReconnectPolicy,
    TidingsError,
)
from tidings.protocol.codec import encode_frame
from tidings.protocol.codes import MsgType

# -- chatting, devices and acks ------------------------------------------------


async def test_two_users_chat_and_the_sender_gets_a_delivery_receipt(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (alice_id, alice_token), (bob_id, bob_token) = await two_users(server)
    alice, bob = make_client(alice_token), make_client(bob_token)
    await alice.connect()
    await bob.connect()
    a_events, b_events = reader(alice), reader(bob)
    ack = await alice.send_chat(bob_id, "hello bob")
    assert isinstance(ack, ChatAck)
    assert ack.message_id > 0 and abs(ack.created_at - time.time() * 1000) < 60_000
    [got] = chats(await b_events.until(is_chat))
    assert got == ChatMessage(ack.message_id, alice_id, bob_id, "text", "hello bob",
                              ack.created_at, "sent")
    receipts = await a_events.until(is_a(Receipt))
    assert receipts[-1] == Receipt((ack.message_id,), "delivered", bob_id)
    assert (alice.user_id, bob.user_id) == (alice_id, bob_id)


async def test_server_assigned_device_id_is_reused_on_every_reconnect(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice_id, token = await server.quick_user()
    tap = Tap()
    alice = make_client(token, tap=tap)
    await alice.connect()
    events = reader(alice)
    device = alice.device_id
    assert device  # assigned by the server: the token names no device
    for _ in range(2):
        assert await server.drop_connections(alice_id) == 1
        got = await events.until(is_a(Reconnected))
        assert [e for e in got if isinstance(e, Disconnected)] == [Disconnected(1001, DROPPED)]
    assert [s.payload.device_id for s in tap.frames(MsgType.AUTH)] == [  # type: ignore[union-attr]
        None, device, device]
    assert {c.device_id for c in server.node.hub.connections(alice_id)} == {device}
    assert alice.device_id == device and alice.connected


@pytest.mark.server_settings(sync_page_size=2)
async def test_offline_messages_arrive_in_order_are_acked_per_page_and_not_redelivered(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (_, alice_token), (bob_id, bob_token) = await two_users(server)
    alice = make_client(alice_token)
    await alice.connect()
    ids = [(await alice.send_chat(bob_id, f"m{n}")).message_id for n in range(5)]

    tap = Tap()
    phone = make_client(bob_token, device_id="phone", tap=tap)
    await phone.connect()
    got = chats(await reader(phone).until(lambda e: getattr(e, "message_id", 0) == ids[-1]))
    assert [(m.message_id, m.content) for m in got] == list(zip(ids, [f"m{n}" for n in range(5)],
                                                                strict=True))
    backlog = [[m["message_id"] for m in r.body["messages"]]
               for r in tap.received if r.type == MsgType.SYNC_RSP]
    assert backlog == [ids[0:2], ids[2:4], ids[4:5]]  # pages of 2
    # auto-ack: one cumulative ack per page, and the server's cursor for "phone" moved
    await eventually(lambda: cursor_is(server, bob_id, "phone", ids[-1]))
    assert tap.acked_ids() == [ids[1], ids[3], ids[4]]
    await phone.close()

    # The same device again: the server's cursor says it has m0..m4, so its
    # backlog holds only m5, and nothing is delivered twice.
    m5 = await alice.send_chat(bob_id, "m5")
    phone_again = make_client(bob_token, device_id="phone", tap=tap)
    await phone_again.connect()
    again = reader(phone_again)
    assert [m.content for m in chats(await again.until(is_chat))] == ["m5"]
    assert [[m["message_id"] for m in r.body["messages"]] for r in tap.received
            if r.conn == 2 and r.type == MsgType.SYNC_RSP] == [[m5.message_id]]
    await alice.send_chat(bob_id, "m6")
    assert [m.content for m in chats(await again.until(is_chat))] == ["m6"]

    # Another device has confirmed nothing: it gets everything.
    laptop = make_client(bob_token, device_id="laptop")
    await laptop.connect()
    everything = chats(await reader(laptop).until(has_content("m6")))
    assert [m.content for m in everything] == [f"m{n}" for n in range(7)]


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_chat_whose_ack_was_lost_is_resent_with_its_seq_and_resolves_once(
        server: RunningServer, make_client: MakeClient, reader: MakeReader,
        binary: bool) -> None:
    (alice_id, alice_token), (bob_id, bob_token) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, tap=tap, binary=binary)
    bob = make_client(bob_token, binary=binary)
    await alice.connect()
    await bob.connect()
    a_events, b_events = reader(alice), reader(bob)
    first = await alice.send_chat(bob_id, "first")

    tap.lose_chat_acks = 1
    sending = asyncio.create_task(alice.send_chat(bob_id, "exactly once"))
    lost = await asyncio.wait_for(tap.lost_chat_acks.get(), 5)  # stored; the client never knew
    await asyncio.sleep(0.05)
    assert not sending.done()
    assert await server.drop_connections(alice_id) == 1
    ack = await asyncio.wait_for(sending, 5)
    assert ack == ChatAck(lost["message_id"], lost["created_at"])

    sent, resent = tap.frames(MsgType.CHAT)[1:3]
    assert (sent.seq, sent.conn) == (resent.seq, 1) and resent.conn == 2
    got = await a_events.until(is_a(Reconnected))
    assert [e for e in got if isinstance(e, Disconnected)] == [Disconnected(1001, DROPPED)]
    after = await alice.send_chat(bob_id, "after")
    received = chats(await b_events.until(has_content("after")))
    assert [(m.message_id, m.content) for m in received] == [
        (first.message_id, "first"), (ack.message_id, "exactly once"),
        (after.message_id, "after")]
    history = await server.node.store.history(alice_id, bob_id, None, 10)
    assert [m.content for m in history] == ["after", "exactly once", "first"]  # stored once
    # One seq counter for every frame of the client object, never reset on reconnect.
    seqs = [s.seq for s in tap.sent if s is not resent]
    assert seqs == sorted(set(seqs))
    assert tap.connects == 2


async def test_chats_sent_while_disconnected_go_out_in_order_after_reconnect(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (alice_id, alice_token), (bob_id, bob_token) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, tap=tap,
                        reconnect=ReconnectPolicy(initial_interval=0.2, max_interval=0.2))
    bob = make_client(bob_token)
    await alice.connect()
    await bob.connect()
    a_events, b_events = reader(alice), reader(bob)
    await server.drop_connections(alice_id)
    await a_events.until(is_a(Disconnected))
    assert not alice.connected
    acks = await asyncio.wait_for(
        asyncio.gather(*(alice.send_chat(bob_id, f"c{n}") for n in range(3))), 5)
    ids = [a.message_id for a in acks]
    assert ids == sorted(set(ids))
    assert [s.conn for s in tap.frames(MsgType.CHAT)] == [2, 2, 2]  # all on the new connection
    got = chats(await b_events.until(has_content("c2")))
    assert [(m.message_id, m.content) for m in got] == list(zip(ids, ["c0", "c1", "c2"],
                                                                strict=True))


async def test_messages_redelivered_after_a_reconnect_are_yielded_once(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (_, alice_token), (bob_id, bob_token) = await two_users(server)
    tap = Tap()
    tap.lose_acks = True  # the server never hears bob's acks, so it re-sends his backlog
    alice, bob = make_client(alice_token), make_client(bob_token, tap=tap)
    await alice.connect()
    await bob.connect()
    events = reader(bob)
    ids = [(await alice.send_chat(bob_id, f"m{n}")).message_id for n in range(3)]
    await events.until(has_content("m2"))
    await eventually(lambda: ids[-1] in tap.acked_ids())  # ...sent, and lost
    tap.lose_acks = False
    await server.drop_connections(bob_id)
    await events.until(is_a(Reconnected))

    def replayed() -> list[list[int]]:
        return [[m["message_id"] for m in r.body["messages"]] for r in tap.received
                if r.conn == 2 and r.type == MsgType.SYNC_RSP]

    await eventually(lambda: replayed() != [])
    assert replayed() == [ids]  # the server did re-send them...
    fresh = await alice.send_chat(bob_id, "fresh")
    await events.until(has_content("fresh"))
    assert [m.message_id for m in chats(events.seen)] == [*ids, fresh.message_id]  # ...once
    # The re-sent duplicates were still acknowledged, so the cursor moves on this time.
    assert [s.payload.message_id for s in tap.frames(MsgType.ACK, conn=2)  # type: ignore[union-attr]
            ][:1] == [ids[-1]]
    await eventually(lambda: cursor_is(server, bob_id, bob.device_id, fresh.message_id))


async def test_read_ack_reaches_the_sender_as_a_read_receipt(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (_, alice_token), (bob_id, bob_token) = await two_users(server)
    tap = Tap()
    alice, bob = make_client(alice_token), make_client(bob_token, auto_ack=False, tap=tap)
    await alice.connect()
    await bob.connect()
    a_events = reader(alice)
    ack = await alice.send_chat(bob_id, "read me")
    await reader(bob).until(is_chat)
    assert await bob.ping() >= 0
    assert tap.frames(MsgType.ACK) == []  # auto_ack off
    assert await cursor_is(server, bob_id, bob.device_id, 0)

    await bob.ack(ack.message_id)
    await a_events.until(lambda e: e == Receipt((ack.message_id,), "delivered", bob_id))
    await eventually(lambda: cursor_is(server, bob_id, bob.device_id, ack.message_id))
    await bob.ack(ack.message_id, "read")
    await a_events.until(lambda e: e == Receipt((ack.message_id,), "read", bob_id))


async def test_json_framing_works_end_to_end(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (_, alice_token), (bob_id, bob_token) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, binary=False, tap=tap)
    bob = make_client(bob_token, binary=False)
    await alice.connect()
    await bob.connect()
    ack = await alice.send_chat(bob_id, "ünïcode ✓", type="image")
    [got] = chats(await reader(bob).until(is_chat))
    assert (got.message_id, got.content, got.type) == (ack.message_id, "ünïcode ✓", "image")
    assert await alice.ping() >= 0
    assert tap.sent and not any(s.frame.binary for s in tap.sent)  # text frames out...
    assert tap.received and not any(r.binary for r in tap.received)  # ...and back
    assert [c.binary for c in server.node.hub.connections(bob_id)] == [False]


# -- sync ----------------------------------------------------------------------


@pytest.mark.server_settings(sync_page_size=2)
async def test_sync_returns_one_page_to_the_caller_only(
        server: RunningServer, proxy: Proxy, make_client: MakeClient,
        reader: MakeReader) -> None:
    (_, alice_token), (bob_id, bob_token) = await two_users(server)
    alice = make_client(alice_token)
    await alice.connect()
    ids = [(await alice.send_chat(bob_id, f"h{n}")).message_id for n in range(3)]
    earlier = make_client(bob_token, device_id="phone")
    await earlier.connect()
    await reader(earlier).until(has_content("h2"))
    await eventually(lambda: cursor_is(server, bob_id, "phone", ids[-1]))
    await earlier.close()

    # A new client for the device: its stream has seen none of h0..h2, and the
    # server has nothing to replay, so anything on events could only come from sync.
    tap = Tap()
    bob = make_client(bob_token, device_id="phone", tap=tap, url=proxy.ws_url)
    await bob.connect()
    events = reader(bob)
    messages, has_more = await bob.sync(last_message_id=0)
    assert [m.content for m in messages] == ["h0", "h1"] and has_more
    messages, has_more = await bob.sync(last_message_id=ids[1])
    assert [m.content for m in messages] == ["h2"] and not has_more

    # The page of a sync whose caller gave up before the answer is dropped too.
    proxy.stall()
    giving_up = asyncio.create_task(bob.sync(last_message_id=0))
    await eventually(lambda: len(tap.frames(MsgType.SYNC_REQ)) == 3)
    giving_up.cancel()
    proxy.resume()
    assert await bob.ping() >= 0  # answered after the stray page
    stray = tap.frames(MsgType.SYNC_REQ)[-1].seq
    [page] = [r for r in tap.received if r.type == MsgType.SYNC_RSP and r.seq == stray]
    assert len(page.body["messages"]) == 2

    assert [r.body["messages"] for r in tap.received
            if r.type == MsgType.SYNC_RSP and r.seq == 0] == [[]]  # the empty backlog
    assert without_presence(await events.quiet(0.1)) == []
    assert tap.frames(MsgType.ACK) == []  # and nothing was acknowledged


# -- presence ------------------------------------------------------------------


async def test_presence_is_pushed_and_restored_after_a_reconnect(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (alice_id, alice_token), (bob_id, bob_token) = await two_users(server)
    tap = Tap()
    alice, bob = make_client(alice_token, tap=tap), make_client(bob_token)
    await alice.connect()
    await bob.connect()
    await alice.send_chat(bob_id, "hi")  # presence goes to peers: now they are
    b_events = reader(bob)
    await alice.set_presence("away")
    await b_events.until(lambda e: e == PresenceChange(alice_id, "away"))
    await server.drop_connections(alice_id)
    # The server forgets a chosen status with the connection (or keeps it
    # without announcing anything): only the client setting it again says "away".
    await b_events.until(lambda e: e == PresenceChange(alice_id, "away"))
    assert [s.conn for s in tap.frames(MsgType.PRESENCE)] == [1, 2]
    assert await server.node.service.presence.status(alice_id) == "away"


# -- errors from the server ----------------------------------------------------


async def test_server_error_is_raised_with_its_code_and_the_client_goes_on(
        server: RunningServer, make_client: MakeClient) -> None:
    (_, alice_token), (bob_id, _) = await two_users(server)
    alice = make_client(alice_token)
    await alice.connect()
    with pytest.raises(TidingsError) as info:
        await alice.send_chat(10**12, "nobody")
    assert info.value.code == "WS_USER_NOT_FOUND"
    assert not isinstance(info.value, AuthError | ConnectionLostError | ClientClosedError)
    assert (await alice.send_chat(bob_id, "somebody")).message_id > 0


async def test_unsolicited_errors_and_garbage_from_the_server_are_ignored(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (_, alice_token), (bob_id, _) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, tap=tap)
    await alice.connect()
    events = reader(alice)
    # A real MsgError nobody waits for: the server refuses an ack of a message
    # it never delivered (acks are fire-and-forget).
    await alice.ack(10**12)
    await eventually(lambda: any(r.type == MsgType.ERROR for r in tap.received))
    assert [r.body["code"] for r in tap.received if r.type == MsgType.ERROR] == [
        "WS_MESSAGE_NOT_FOUND"]
    # Frames no correct server sends, slipped in at this end of the socket.
    tap.inject(b"\xc1 not msgpack",
               "{not json",
               encode_frame(MsgType.CHAT_PUSH, 0, {"message_id": "x"}, binary=True),
               encode_frame(MsgType.RECEIPT_PUSH, 0, {"status": 7}, binary=True),
               encode_frame(MsgType.ERROR, 12345, {"code": "WS_RATE_LIMITED",
                                                   "message": "slow down"}, binary=True),
               encode_frame(MsgType.SYNC_RSP, 777, {"messages": [], "has_more": False},
                            binary=True),
               encode_frame(999, 0, {"what": "ever"}, binary=True))
    assert await alice.ping() >= 0  # the pong came right after them
    assert tap.injections == []
    assert (await alice.send_chat(bob_id, "still fine")).message_id > 0
    assert without_presence(await events.quiet(0.1)) == []
    assert tap.connects == 1 and alice.connected
