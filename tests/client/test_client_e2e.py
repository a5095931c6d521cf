"""The client against the real Tidings server, in everyday use.

The server is only reached through its public contract: ``ws_url``,
``new_user(name)`` / ``quick_user()`` and ``drop_connections(user_id)``. Users
come from ``quick_user`` (no argon2, ~0.3 s a user saved) except in
:func:`test_two_users_chat`, which logs in through the HTTP API. Fault
injection (proxy, lost frames, restarts) is in test_client_behaviour.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.client.event_reader import EventReader
from tests.support.server import RunningServer
from tidings.client import (
    AiohttpTransport,
    AuthError,
    ChatAck,
    ChatMessage,
    Client,
    Disconnected,
    Event,
    PresenceChange,
    Receipt,
    Reconnected,
    ReconnectPolicy,
    Transport,
)
from tidings.protocol.codec import decode_frame, decode_server_frame
from tidings.protocol.codes import MsgType

MakeReader = Callable[[Client], EventReader]
QUICK = ReconnectPolicy(initial_interval=0.05, max_interval=0.5)


def chats(events: list[Event]) -> list[ChatMessage]:
    return [e for e in events if isinstance(e, ChatMessage)]


def has_content(content: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, ChatMessage) and e.content == content


async def user(server: RunningServer, prefix: str, *, login: bool = False) -> tuple[int, str]:
    """A user and a token: registered and logged in over HTTP with ``login``, else
    straight from the store."""
    if not login:
        return await server.quick_user()
    user_id, token = await server.new_user(f"{prefix}-{uuid.uuid4().hex[:8]}")
    return int(user_id), str(token)


def client(server: RunningServer, token: str, **kwargs: Any) -> Client:
    return Client(server.ws_url, token, reconnect=QUICK, **kwargs)


class Tap:
    """A connector over the real socket that records traffic and can lose one ChatAck."""

    def __init__(self) -> None:
        self.connects = 0
        self.sent: list[tuple[int, int]] = []  # (type, seq) of every client frame
        self.lose_next_chat_ack = False
        self.lost: asyncio.Future[dict[str, Any]] | None = None

    async def connect(self, url: str) -> Transport:
        self.connects += 1
        return _TappedTransport(await AiohttpTransport.connect(url), self)

    def chat_seqs(self) -> list[int]:
        return [seq for type_, seq in self.sent if type_ == MsgType.CHAT]


class _TappedTransport:
    def __init__(self, inner: Transport, tap: Tap) -> None:
        self._inner, self._tap = inner, tap

    async def send(self, data: bytes | str) -> None:
        frame = decode_frame(data)
        self._tap.sent.append((frame.type, frame.seq))
        await self._inner.send(data)

    async def recv(self) -> bytes | str:
        while True:
            data = await self._inner.recv()
            type_, _, body = decode_server_frame(data)
            if type_ == MsgType.CHAT_ACK and self._tap.lose_next_chat_ack:
                self._tap.lose_next_chat_ack = False
                assert self._tap.lost is not None
                self._tap.lost.set_result(body)
                continue
            return data

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._inner.close(code, reason)


@pytest.mark.parametrize("binary", [True, False])
async def test_two_users_chat(server: RunningServer, reader: MakeReader, binary: bool) -> None:
    alice_id, alice_token = await user(server, "alice", login=True)
    bob_id, bob_token = await user(server, "bob", login=True)
    async with client(server, alice_token, binary=binary) as alice, \
            client(server, bob_token, binary=binary) as bob:
        a_events, b_events = reader(alice), reader(bob)
        before = int(time.time() * 1000)
        ack = await alice.send_chat(bob_id, "hello bob")
        assert isinstance(ack, ChatAck) and ack.message_id > 0
        assert before - 5_000 <= ack.created_at <= int(time.time() * 1000) + 5_000
        [got] = chats(await b_events.until(has_content("hello bob")))
        assert (got.message_id, got.from_, got.to, got.type, got.created_at) == (
            ack.message_id, alice_id, bob_id, "text", ack.created_at)
        receipts = await a_events.until(lambda e: isinstance(e, Receipt))
        assert receipts[-1] == Receipt((ack.message_id,), "delivered", bob_id)
        assert alice.user_id == alice_id and alice.device_id


async def test_offline_messages_are_delivered_on_connect(
        server: RunningServer, reader: MakeReader) -> None:
    _, alice_token = await user(server, "alice")
    bob_id, bob_token = await user(server, "bob")
    async with client(server, alice_token) as alice:
        acks = [await alice.send_chat(bob_id, f"offline {n}") for n in range(5)]
    async with client(server, bob_token) as bob:
        got = chats(await reader(bob).until(has_content("offline 4")))
    assert [m.message_id for m in got] == [a.message_id for a in acks]
    assert [m.content for m in got] == [f"offline {n}" for n in range(5)]


async def test_second_device_receives_only_what_it_missed(
        server: RunningServer, reader: MakeReader) -> None:
    _, alice_token = await user(server, "alice")
    bob_id, bob_token = await user(server, "bob")
    async with client(server, alice_token) as alice:
        await alice.send_chat(bob_id, "one")
        await alice.send_chat(bob_id, "two")
        async with client(server, bob_token) as phone:
            await reader(phone).until(has_content("two"))
            await phone.ping()  # the auto-ack went out before this ping: it is processed
            phone_id = phone.device_id
        await alice.send_chat(bob_id, "three")
    async with client(server, bob_token, device_id=phone_id) as phone:
        missed = chats(await reader(phone).until(has_content("three")))
        assert [m.content for m in missed] == ["three"]
    async with client(server, bob_token, device_id="laptop") as laptop:
        everything = chats(await reader(laptop).until(has_content("three")))
        assert [m.content for m in everything] == ["one", "two", "three"]


async def test_chat_whose_ack_was_lost_resolves_after_reconnect_without_duplicate(
        server: RunningServer, reader: MakeReader) -> None:
    alice_id, alice_token = await user(server, "alice")
    bob_id, bob_token = await user(server, "bob")
    tap = Tap()
    async with client(server, alice_token, connector=tap.connect) as alice, \
            client(server, bob_token) as bob:
        a_events, b_events = reader(alice), reader(bob)
        tap.lose_next_chat_ack = True
        tap.lost = asyncio.get_running_loop().create_future()
        sending = asyncio.create_task(alice.send_chat(bob_id, "exactly once"))
        lost = await asyncio.wait_for(tap.lost, 5)  # stored, but the client never saw the ack
        assert not sending.done()
        await server.drop_connections(alice_id)
        ack = await asyncio.wait_for(sending, 10)
        assert ack.message_id == lost["message_id"]
        first, resent = tap.chat_seqs()
        assert first == resent
        events = await a_events.until(lambda e: isinstance(e, Reconnected))
        assert [e.code for e in events if isinstance(e, Disconnected)] == [1001]
        await alice.send_chat(bob_id, "after")
        got = chats(await b_events.until(has_content("after")))
        assert [m.content for m in got] == ["exactly once", "after"]
        assert tap.connects == 2


async def test_chat_sent_while_disconnected_is_delivered_once(
        server: RunningServer, reader: MakeReader) -> None:
    alice_id, alice_token = await user(server, "alice")
    bob_id, bob_token = await user(server, "bob")
    async with client(server, alice_token) as alice, \
            client(server, bob_token) as bob:
        a_events, b_events = reader(alice), reader(bob)
        await server.drop_connections(alice_id)
        await a_events.until(lambda e: isinstance(e, Disconnected))
        ack = await asyncio.wait_for(alice.send_chat(bob_id, "queued"), 10)
        got = chats(await b_events.until(has_content("queued")))
        assert [m.message_id for m in got] == [ack.message_id]
        assert chats(await b_events.quiet(0.3)) == []


async def test_receiver_reconnecting_sees_each_message_once(
        server: RunningServer, reader: MakeReader) -> None:
    _, alice_token = await user(server, "alice")
    bob_id, bob_token = await user(server, "bob")
    async with client(server, alice_token) as alice, \
            client(server, bob_token) as bob:
        b_events = reader(bob)
        for n in range(3):
            await alice.send_chat(bob_id, f"m{n}")
        await b_events.until(has_content("m2"))
        await server.drop_connections(bob_id)
        await b_events.until(lambda e: isinstance(e, Reconnected))
        await alice.send_chat(bob_id, "m3")
        await b_events.until(has_content("m3"))
        ids = [m.message_id for m in chats(b_events.seen)]
        assert [m.content for m in chats(b_events.seen)] == ["m0", "m1", "m2", "m3"]
        assert ids == sorted(set(ids))


async def test_sync_returns_the_conversation(server: RunningServer) -> None:
    _, alice_token = await user(server, "alice")
    bob_id, bob_token = await user(server, "bob")
    async with client(server, alice_token) as alice:
        acks = [await alice.send_chat(bob_id, f"s{n}") for n in range(3)]
    async with client(server, bob_token) as bob:
        messages, _ = await bob.sync(last_message_id=acks[0].message_id)
        assert [m.message_id for m in messages][:2] == [a.message_id for a in acks[1:]]


async def test_refused_token_raises_auth_error_and_does_not_retry(server: RunningServer) -> None:
    tap = Tap()
    bad = client(server, "not-a-token", connector=tap.connect)
    with pytest.raises(AuthError):
        await bad.connect()
    await asyncio.sleep(0.3)
    assert tap.connects == 1
    await bad.close()


async def test_presence_read_receipts_and_ping(server: RunningServer, reader: MakeReader) -> None:
    alice_id, alice_token = await user(server, "alice")
    bob_id, bob_token = await user(server, "bob")
    async with client(server, alice_token) as alice, client(server, bob_token) as bob:
        a_events, b_events = reader(alice), reader(bob)
        assert await alice.ping() >= 0
        ack = await alice.send_chat(bob_id, "read me")  # now peers: presence is shared
        await b_events.until(has_content("read me"))
        await bob.ack(ack.message_id, "read")
        await a_events.until(lambda e: isinstance(e, Receipt) and e.status == "read")
        assert Receipt((ack.message_id,), "read", bob_id) in a_events.seen
        await alice.set_presence("away")
        await b_events.until(lambda e: e == PresenceChange(alice_id, "away"))
