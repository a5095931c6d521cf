"""The client against the in-process fake server (tests/client/fake_server.py).

These prove the client's own behaviour (reconnects, re-sent chats,
de-duplication, acks) with a server that can be told to misbehave; the same
scenarios against the real server are in test_client_e2e.py. The last tests
run over real sockets through :class:`~tidings.client.AiohttpTransport`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.client.event_reader import FAST_RECONNECT, EventReader
from tests.client.fake_server import FakeServer, aiohttp_app
from tidings.client import (
    AuthError,
    ChatAck,
    ChatMessage,
    Client,
    ClientClosedError,
    ConnectionLostError,
    Disconnected,
    Event,
    PresenceChange,
    Receipt,
    Reconnected,
    ReconnectPolicy,
    TidingsError,
)
from tidings.protocol.codec import encode_frame
from tidings.protocol.codes import MsgType

MakeClient = Callable[..., Client]
MakeReader = Callable[[Client], EventReader]


def is_chat(event: Event) -> bool:
    return isinstance(event, ChatMessage)


def chats(events: list[Event]) -> list[ChatMessage]:
    return [e for e in events if isinstance(e, ChatMessage)]


def acks_from(fake: FakeServer, user_id: int) -> list[Any]:
    return [body.message_id for uid, _, t, _, body in fake.received
            if uid == user_id and t == MsgType.ACK]


async def test_two_users_chat_and_the_sender_gets_a_delivery_receipt(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice, bob = make_client(1), make_client(2)
    await alice.connect()
    await bob.connect()
    a_events, b_events = reader(alice), reader(bob)
    ack = await alice.send_chat(2, "hello bob")
    assert isinstance(ack, ChatAck)
    assert ack.message_id == 1 and ack.created_at > 1_600_000_000_000
    [got] = await b_events.until(is_chat)
    assert got == ChatMessage(1, 1, 2, "text", "hello bob", ack.created_at, "sent")
    [receipt] = await a_events.until(lambda e: isinstance(e, Receipt))
    assert receipt == Receipt((1,), "delivered", 2)
    assert alice.user_id == 1 and bob.user_id == 2


async def test_server_assigned_device_id_is_reused_on_every_reconnect(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice = make_client(1)
    await alice.connect()
    events = reader(alice)
    assert alice.device_id == "dev-1"
    for _ in range(2):
        await fake.drop(1)
        got = await events.until(lambda e: isinstance(e, Reconnected))
        assert isinstance(got[0], Disconnected) and got[0].code == 1001
    assert [a.device_id for a, _ in fake.auths] == [None, "dev-1", "dev-1"]
    assert alice.device_id == "dev-1" and alice.connected


async def test_offline_messages_arrive_on_connect_in_order_and_are_acked_per_page(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    for n in range(5):
        fake.store(1, 2, f"m{n}")
    bob = make_client(2, device_id="phone")
    await bob.connect()
    got = await reader(bob).until(lambda e: getattr(e, "message_id", 0) == 5)
    assert [m.content for m in chats(got)] == ["m0", "m1", "m2", "m3", "m4"]
    await asyncio.sleep(0.05)
    assert acks_from(fake, 2) == [2, 4, 5]  # the last id of each page of 2
    assert fake.cursors[2, "phone"] == 5


async def test_second_device_receives_only_what_it_missed(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    fake.store(1, 2, "one")
    fake.store(1, 2, "two")
    phone = make_client(2, device_id="phone")
    await phone.connect()
    await reader(phone).until(lambda e: getattr(e, "message_id", 0) == 2)
    await asyncio.sleep(0.05)
    await phone.close()
    fake.store(1, 2, "three")
    phone_again, laptop = make_client(2, device_id="phone"), make_client(2, device_id="laptop")
    await phone_again.connect()
    await laptop.connect()
    missed = await reader(phone_again).until(is_chat)
    assert [m.content for m in chats(missed)] == ["three"]
    everything = await reader(laptop).until(lambda e: getattr(e, "message_id", 0) == 3)
    assert [m.content for m in chats(everything)] == ["one", "two", "three"]


async def test_pending_chat_survives_a_drop_with_its_original_seq_and_no_duplicate(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice, bob = make_client(1), make_client(2)
    await alice.connect()
    await bob.connect()
    a_events, b_events = reader(alice), reader(bob)
    fake.drop_instead_of_chat_ack = 1  # stored, then the connection drops before the ChatAck
    ack = await alice.send_chat(2, "exactly once")
    first_seq, resent_seq = fake.chat_seqs(1)
    assert first_seq == resent_seq
    assert [m["content"] for m in fake.messages] == ["exactly once"]
    assert ack.message_id == fake.messages[0]["message_id"]
    got = await a_events.until(lambda e: isinstance(e, Reconnected))
    assert isinstance(got[0], Disconnected) and got[0].code == 1001
    assert [m.content for m in chats(await b_events.quiet(0.2))] == ["exactly once"]
    seqs = [seq for uid, _, t, seq, _ in fake.received if uid == 1 and t != MsgType.CHAT]
    assert seqs == sorted(set(seqs)) and first_seq not in seqs  # one counter, never reset


async def test_chats_sent_while_disconnected_go_out_in_order_after_reconnect(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice = make_client(1, reconnect=ReconnectPolicy(initial_interval=0.2))
    await alice.connect()
    events = reader(alice)
    await fake.drop(1)
    await events.until(lambda e: isinstance(e, Disconnected))
    acks = await asyncio.gather(*(alice.send_chat(2, f"c{n}") for n in range(3)))
    assert [a.message_id for a in acks] == [1, 2, 3]
    assert [m["content"] for m in fake.messages] == ["c0", "c1", "c2"]


async def test_messages_redelivered_after_a_reconnect_are_yielded_once(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    fake.ignore_acks = True  # the server forgets our acks, so it re-sends the backlog
    alice, bob = make_client(1), make_client(2)
    await alice.connect()
    await bob.connect()
    events = reader(bob)
    for n in range(3):
        await alice.send_chat(2, f"m{n}")
    await events.until(lambda e: getattr(e, "message_id", 0) == 3)
    await fake.drop(2)
    await events.until(lambda e: isinstance(e, Reconnected))
    await alice.send_chat(2, "fresh")
    await events.until(lambda e: getattr(e, "content", "") == "fresh")
    assert [m.message_id for m in chats(events.seen)] == [1, 2, 3, 4]
    backlog = [body for uid, _, t, _, body in fake.received if uid == 2 and t == MsgType.ACK]
    assert backlog  # the re-sent duplicates were still acknowledged


async def test_refused_token_raises_auth_error_without_retrying(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    client = make_client(1, token="wrong")
    with pytest.raises(AuthError):
        await client.connect()
    await asyncio.sleep(0.1)
    assert fake.connects == 1
    assert await reader(client).rest() == []
    with pytest.raises(ClientClosedError):
        await client.send_chat(2, "x")
    with pytest.raises(ClientClosedError):
        await client.connect()


async def test_token_revoked_mid_session_stops_the_client_for_good(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice = make_client(1)
    await alice.connect()
    events = reader(alice)
    del fake.tokens["token-1"]
    fake.drop_instead_of_chat_ack, fake.drop_code = 1, 4401
    with pytest.raises(AuthError):
        await alice.send_chat(2, "too late")
    assert await events.rest() == [Disconnected(4401, "dropped before ChatAck")]
    await asyncio.sleep(0.1)
    assert fake.connects == 1
    with pytest.raises(ClientClosedError) as info:
        await alice.ack(1)
    assert isinstance(info.value.__cause__, AuthError)


async def test_token_refused_on_reconnect_stops_the_client(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice = make_client(1, reconnect=ReconnectPolicy(initial_interval=0.1))
    await alice.connect()
    events = reader(alice)
    del fake.tokens["token-1"]  # e.g. expired while the connection was down
    await fake.drop(1)
    await events.until(lambda e: isinstance(e, Disconnected))
    pending = asyncio.create_task(alice.send_chat(2, "never"))
    with pytest.raises(AuthError):
        await pending
    assert await events.rest() == []
    assert fake.connects == 2


async def test_garbage_and_unsolicited_errors_from_the_server_are_ignored(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice = make_client(1)
    await alice.connect()
    fake.inject(1, b"\xc1 not msgpack")
    fake.inject(1, encode_frame(MsgType.CHAT_PUSH, 0, {"message_id": "x"}, binary=True))
    fake.inject(1, encode_frame(MsgType.ERROR, 12345, {"code": "WS_RATE_LIMITED",
                                                       "message": "slow down"}, binary=True))
    fake.inject(1, encode_frame(MsgType.SYNC_RSP, 777, {"messages": [], "has_more": False},
                                binary=True))
    assert await alice.ping() >= 0
    assert (await alice.send_chat(2, "still fine")).message_id == 1
    assert await reader(alice).quiet() == []


async def test_server_error_is_raised_with_its_code_and_the_client_goes_on(
        fake: FakeServer, make_client: MakeClient) -> None:
    alice = make_client(1)
    await alice.connect()
    with pytest.raises(TidingsError) as info:
        await alice.send_chat(99, "nobody")
    assert info.value.code == "WS_USER_NOT_FOUND"
    assert (await alice.send_chat(2, "somebody")).message_id == 1


async def test_missing_pong_counts_as_a_dead_connection(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice = make_client(1, ping_interval=0.05, ping_timeout=0.05)
    await alice.connect()
    assert await alice.ping() >= 0
    fake.answer_pings = False
    events = reader(alice)
    got = await events.until(lambda e: isinstance(e, Disconnected))
    assert got[-1] == Disconnected(1006, "no pong within ping_timeout")
    fake.answer_pings = True
    await events.until(lambda e: isinstance(e, Reconnected))
    assert await events.quiet(0.3) == []  # pongs flow again: no more drops


async def test_json_framing_works_end_to_end(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice, bob = make_client(1, binary=False), make_client(2, binary=False)
    await alice.connect()
    await bob.connect()
    ack = await alice.send_chat(2, "ünïcode ✓", type="image")
    [got] = await reader(bob).until(is_chat)
    assert (got.message_id, got.content, got.type) == (ack.message_id, "ünïcode ✓", "image")
    assert [binary for _, binary in fake.auths] == [False, False]
    assert await alice.ping() >= 0


async def test_sync_returns_one_page_to_the_caller_only(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    bob = make_client(2)
    await bob.connect()
    for n in range(3):
        fake.store(1, 2, f"h{n}")
    messages, has_more = await bob.sync(last_message_id=0)
    assert [m.content for m in messages] == ["h0", "h1"] and has_more
    messages, has_more = await bob.sync(last_message_id=2)
    assert [m.content for m in messages] == ["h2"] and not has_more
    assert await reader(bob).quiet() == []
    assert acks_from(fake, 2) == []


async def test_presence_is_pushed_and_restored_after_a_reconnect(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice, bob = make_client(1), make_client(2)
    await alice.connect()
    await bob.connect()
    b_events = reader(bob)
    await alice.set_presence("away")
    assert await b_events.until(lambda e: True) == [PresenceChange(1, "away")]
    await fake.drop(1)
    assert await b_events.until(lambda e: True) == [PresenceChange(1, "away")]


async def test_read_ack_reaches_the_sender_as_a_read_receipt(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice, bob = make_client(1), make_client(2, auto_ack=False)
    await alice.connect()
    await bob.connect()
    a_events = reader(alice)
    ack = await alice.send_chat(2, "read me")
    await reader(bob).until(is_chat)
    assert acks_from(fake, 2) == []  # auto_ack off
    await bob.ack(ack.message_id, "read")
    [receipt] = await a_events.until(lambda e: isinstance(e, Receipt))
    assert receipt == Receipt((ack.message_id,), "read", 2)
    await bob.ack(ack.message_id)
    await asyncio.sleep(0.05)
    assert fake.cursors[2, "dev-2"] == ack.message_id


async def test_close_fails_pending_calls_and_ends_the_event_stream(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice = make_client(1, reconnect=ReconnectPolicy(initial_interval=30))
    await alice.connect()
    events = reader(alice)
    await fake.drop(1)
    await events.until(lambda e: isinstance(e, Disconnected))
    pending = asyncio.create_task(alice.send_chat(2, "never sent"))
    await asyncio.sleep(0.05)
    await alice.close()
    with pytest.raises(ClientClosedError):
        await pending
    assert await events.rest() == []
    assert not alice.connected


async def test_gives_up_after_max_attempts(
        fake: FakeServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice = make_client(1, reconnect=ReconnectPolicy(initial_interval=0.01, max_attempts=2))
    await alice.connect()
    events = reader(alice)
    fake.refuse = True
    pending = asyncio.create_task(alice.send_chat(2, "lost"))
    await fake.drop(1)
    with pytest.raises(ConnectionLostError, match="after 2 attempts"):
        await pending
    assert [type(e) for e in await events.rest()] == [Disconnected]
    assert fake.connects == 3


async def test_first_connect_failure_is_raised_and_can_be_retried(
        fake: FakeServer, make_client: MakeClient) -> None:
    fake.refuse = True
    alice = make_client(1)
    with pytest.raises(ConnectionLostError):
        await alice.connect()
    fake.refuse = False
    await alice.connect()
    assert alice.connected or (await alice.ping()) >= 0


async def test_calls_before_connect_are_refused(make_client: MakeClient) -> None:
    with pytest.raises(ClientClosedError, match="connect"):
        await make_client(1).send_chat(2, "x")


# -- the same over real sockets (AiohttpTransport) ----------------------------


@pytest.fixture
async def socket_url(fake: FakeServer) -> AsyncIterator[str]:
    server = TestServer(aiohttp_app(fake))
    await server.start_server()
    yield str(server.make_url("/ws")).replace("http://", "ws://")
    await server.close()


def socket_client(url: str, user_id: int, **kwargs: Any) -> Client:
    return Client(url, f"token-{user_id}", reconnect=FAST_RECONNECT, **kwargs)


@pytest.mark.parametrize("binary", [True, False])
async def test_over_a_socket_a_dropped_chat_resolves_once(
        fake: FakeServer, socket_url: str, reader: MakeReader, binary: bool) -> None:
    async with socket_client(socket_url, 1, binary=binary) as alice, \
            socket_client(socket_url, 2, binary=binary) as bob:
        a_events, b_events = reader(alice), reader(bob)
        assert (await alice.send_chat(2, "first")).message_id == 1
        fake.drop_instead_of_chat_ack = 1
        ack = await alice.send_chat(2, "second")
        assert ack.message_id == 2 and len(fake.messages) == 2
        got = await a_events.until(lambda e: isinstance(e, Reconnected))
        assert [e.code for e in got if isinstance(e, Disconnected)] == [1001]
        received = chats(await b_events.until(lambda e: getattr(e, "message_id", 0) == 2))
        assert [m.content for m in received] == ["first", "second"]
        assert chats(await b_events.quiet(0.2)) == []
        assert alice.device_id == fake.auths[-1][0].device_id


async def test_over_a_socket_close_code_4401_is_an_auth_error(
        fake: FakeServer, socket_url: str) -> None:
    client = Client(socket_url, "wrong", reconnect=FAST_RECONNECT)
    with pytest.raises(AuthError):
        await client.connect()
    await asyncio.sleep(0.1)
    assert fake.connects == 1


async def test_over_a_socket_server_close_code_reaches_the_application(
        fake: FakeServer, socket_url: str, reader: MakeReader) -> None:
    async with socket_client(socket_url, 1) as alice:
        events = reader(alice)
        await fake.drop(1, 4413, "slow consumer")
        got = await events.until(lambda e: isinstance(e, Reconnected))
        assert got == [Disconnected(4413, "slow consumer"), Reconnected(1)]
        assert await alice.ping() >= 0
