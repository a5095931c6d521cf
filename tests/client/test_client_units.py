"""Byte-level tests of the client's pure parts: no server, no sockets, no sleeps."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import msgspec
import pytest

from tidings.client import (
    AuthError,
    ChatAck,
    ChatMessage,
    ConnectionLostError,
    PresenceChange,
    Receipt,
    ReconnectPolicy,
    TidingsError,
    TransportClosed,
)
from tidings.protocol.codec import decode_frame, decode_payload, decode_server_frame, encode_frame
from tidings.protocol.codes import MsgType
from tidings.protocol.messages import AuthPayload
from tidings_client._events import (
    Deduplicator,
    EventStream,
    events_from_push,
    parse_chat_ack,
    parse_sync_page,
)
from tidings_client._handshake import authenticate
from tidings_client._requests import Pending, PendingRequests


def msg(message_id: int, content: str = "hi") -> dict[str, Any]:
    return {"message_id": message_id, "from": 7, "to": 9, "type": "text", "content": content,
            "created_at": 1_700_000_000_000 + message_id, "status": "sent"}


def server_frame(type_: int, payload: Any, *, seq: int = 0,
                 binary: bool = True) -> tuple[int, int, dict[str, Any]]:
    """Encode like the server does, then decode like the client does."""
    data = encode_frame(type_, seq, payload, binary=binary)
    return decode_server_frame(data if binary else data.decode())


# -- reconnect policy ---------------------------------------------------------


def test_backoff_follows_seed_001_and_caps_at_thirty_seconds() -> None:
    delays = list(itertools.islice(ReconnectPolicy().delays(), 12))
    assert delays[:4] == [1.0, 1.5, 2.25, 3.375]
    assert delays == pytest.approx([min(1.5**n, 30.0) for n in range(12)])
    assert delays[-1] == 30.0


def test_backoff_is_unlimited_by_default_and_honours_max_attempts() -> None:
    assert len(list(itertools.islice(ReconnectPolicy().delays(), 1000))) == 1000
    assert list(ReconnectPolicy(max_attempts=3).delays()) == [1.0, 1.5, 2.25]
    assert list(ReconnectPolicy(max_attempts=0).delays()) == []


def test_backoff_custom_intervals() -> None:
    policy = ReconnectPolicy(initial_interval=0.5, backoff_factor=2, max_interval=3,
                             max_attempts=5)
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_is_off_by_default_and_bounded_when_on() -> None:
    policy = ReconnectPolicy(jitter=0.2, max_attempts=200)
    delays = list(policy.delays(random.Random(1)))
    plain = list(ReconnectPolicy(max_attempts=200).delays())
    assert delays != plain
    for jittered, base in zip(delays, plain, strict=True):
        assert base * 0.8 <= jittered <= min(base * 1.2, 30.0)


@pytest.mark.parametrize("kwargs", [{"initial_interval": -1}, {"max_interval": 0.5},
                                    {"backoff_factor": 0.9}, {"max_attempts": -1},
                                    {"jitter": 1.5}])
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ReconnectPolicy(**kwargs)


# -- decoding server frames into events --------------------------------------


@pytest.mark.parametrize("binary", [True, False])
def test_chat_push_becomes_a_chat_message(binary: bool) -> None:
    type_, _, body = server_frame(MsgType.CHAT_PUSH, msg(5, "héllo"), binary=binary)
    assert events_from_push(type_, body) == [
        ChatMessage(message_id=5, from_=7, to=9, type="text", content="héllo",
                    created_at=1_700_000_000_005, status="sent")]


@pytest.mark.parametrize("binary", [True, False])
def test_sync_page_is_flattened_in_order(binary: bool) -> None:
    page = {"messages": [msg(3), msg(4), msg(8)], "has_more": True}
    type_, _, body = server_frame(MsgType.SYNC_RSP, page, binary=binary)
    events = events_from_push(type_, body)
    assert [e.message_id for e in events if isinstance(e, ChatMessage)] == [3, 4, 8]
    messages, has_more = parse_sync_page(body)
    assert [m.message_id for m in messages] == [3, 4, 8] and has_more is True


def test_empty_sync_page_gives_no_event() -> None:
    type_, _, body = server_frame(MsgType.SYNC_RSP, {"messages": [], "has_more": False})
    assert events_from_push(type_, body) == []


@pytest.mark.parametrize("binary", [True, False])
def test_receipt_and_presence_pushes(binary: bool) -> None:
    type_, _, body = server_frame(MsgType.RECEIPT_PUSH,
                                  {"message_ids": [1, 2], "status": "delivered", "by": 9},
                                  binary=binary)
    assert events_from_push(type_, body) == [Receipt((1, 2), "delivered", 9)]
    type_, _, body = server_frame(MsgType.PRESENCE_PUSH, {"user_id": 9, "status": "away"},
                                  binary=binary)
    assert events_from_push(type_, body) == [PresenceChange(9, "away")]


def test_frames_that_are_not_events() -> None:
    for type_ in (MsgType.PONG, MsgType.ERROR, MsgType.CHAT_ACK, 999):
        assert events_from_push(type_, {}) == []


def test_malformed_push_payload_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        events_from_push(MsgType.CHAT_PUSH, {"message_id": "x"})


def test_chat_ack_payload() -> None:
    _, seq, body = server_frame(MsgType.CHAT_ACK, {"message_id": 41, "created_at": 1234}, seq=77)
    assert seq == 77
    assert parse_chat_ack(body) == ChatAck(message_id=41, created_at=1234)


# -- de-duplication ----------------------------------------------------------


def chat(message_id: int) -> ChatMessage:
    return ChatMessage(message_id, 7, 9, "text", "x", 0, "sent")


def test_deduplicator_lets_each_id_through_once_in_increasing_order() -> None:
    dedup = Deduplicator()
    assert [m.message_id for m in dedup.admit(map(chat, [1, 2, 3]))] == [1, 2, 3]
    assert [m.message_id for m in dedup.admit(map(chat, [2, 3, 4, 5]))] == [4, 5]
    assert [m.message_id for m in dedup.admit(map(chat, [5, 1, 6, 6]))] == [6]
    assert dedup.last_id == 6


async def test_event_stream_drops_redelivered_messages_and_returns_the_id_to_ack() -> None:
    stream = EventStream()
    assert stream.put_push(MsgType.SYNC_RSP, {"messages": [msg(1), msg(2)], "has_more": True}) == 2
    assert stream.put_push(MsgType.SYNC_RSP, {"messages": [msg(1), msg(2)],
                                              "has_more": False}) == 2
    assert stream.put_push(MsgType.CHAT_PUSH, msg(3)) == 3
    assert stream.put_push(MsgType.PRESENCE_PUSH, {"user_id": 1, "status": "online"}) == 0
    stream.end()
    stream.put(PresenceChange(2, "away"))  # after the end: dropped
    got = [e async for e in stream]
    assert [getattr(e, "message_id", None) for e in got] == [1, 2, 3, None]
    assert [e async for e in stream] == []  # a second reader ends too


# -- requests waiting for replies ---------------------------------------------


async def test_pending_requests_match_replies_by_seq_and_type() -> None:
    loop = asyncio.get_running_loop()
    reqs = PendingRequests()
    chat_f: asyncio.Future[ChatAck] = loop.create_future()
    ping_f: asyncio.Future[None] = loop.create_future()
    reqs.add(10, Pending(MsgType.CHAT, None, parse_chat_ack, chat_f, resend=True))
    reqs.add(11, Pending(MsgType.PING, None, lambda _: None, ping_f, resend=False, gen=1))
    assert not reqs.resolve(MsgType.PONG, 10, {})  # wrong reply type
    assert not reqs.resolve(MsgType.CHAT_ACK, 12, {})  # unknown seq
    assert not reqs.resolve(MsgType.CHAT_ACK, 0, {})  # pushes are never replies
    assert [seq for seq, _ in reqs.unsent(1)] == [10]
    assert reqs.resolve(MsgType.CHAT_ACK, 10, {"message_id": 3, "created_at": 4})
    assert chat_f.result() == ChatAck(3, 4)
    assert reqs.unsent(2) == []  # answered: nothing to re-send
    reqs.fail(ConnectionLostError("gone"), everything=False)
    with pytest.raises(ConnectionLostError):
        ping_f.result()


async def test_msg_error_fails_the_request_with_its_code() -> None:
    reqs = PendingRequests()
    future: asyncio.Future[ChatAck] = asyncio.get_running_loop().create_future()
    reqs.add(5, Pending(MsgType.CHAT, None, parse_chat_ack, future, resend=True))
    type_, seq, body = server_frame(MsgType.ERROR, {"code": "WS_USER_NOT_FOUND",
                                                    "message": "no such user"}, seq=5)
    assert reqs.resolve(type_, seq, body)
    with pytest.raises(TidingsError) as info:
        future.result()
    assert (info.value.code, info.value.message) == ("WS_USER_NOT_FOUND", "no such user")


async def test_malformed_reply_fails_the_request_instead_of_hanging() -> None:
    reqs = PendingRequests()
    future: asyncio.Future[ChatAck] = asyncio.get_running_loop().create_future()
    reqs.add(5, Pending(MsgType.CHAT, None, parse_chat_ack, future, resend=True))
    assert reqs.resolve(MsgType.CHAT_ACK, 5, {"message_id": "nope"})
    with pytest.raises(TidingsError, match="WS_INVALID_PAYLOAD"):
        future.result()


# -- the authentication exchange, over a scripted transport -------------------


class Scripted:
    """A transport that records what is sent and replays canned server frames."""

    def __init__(self, *replies: bytes | str | TransportClosed) -> None:
        self.sent: list[bytes | str] = []
        self.replies = list(replies)

    async def send(self, data: bytes | str) -> None:
        self.sent.append(data)

    async def recv(self) -> bytes | str:
        reply = self.replies.pop(0)
        if isinstance(reply, TransportClosed):
            raise reply
        return reply

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


async def test_authenticate_sends_token_and_device_and_skips_other_frames() -> None:
    ok = {"success": True, "user_id": 3, "device_id": "dev-x"}
    t = Scripted(encode_frame(MsgType.PONG, 99, None, binary=True),
                 encode_frame(MsgType.AUTH_RSP, 42, ok, binary=True))
    rsp = await authenticate(t, seq=42, token="tok", device_id="dev-x", binary=True)
    assert (rsp.user_id, rsp.device_id) == (3, "dev-x")
    frame = decode_frame(t.sent[0])
    assert (frame.type, frame.seq) == (MsgType.AUTH, 42)
    assert decode_payload(frame) == AuthPayload(token="tok", device_id="dev-x")


async def test_authenticate_in_json_without_device_id() -> None:
    ok = {"success": True, "user_id": 3, "device_id": "assigned"}
    t = Scripted(encode_frame(MsgType.AUTH_RSP, 1, ok, binary=False).decode())
    rsp = await authenticate(t, seq=1, token="tok", device_id=None, binary=False)
    assert rsp.device_id == "assigned"
    assert isinstance(t.sent[0], str)
    assert decode_payload(decode_frame(t.sent[0])) == AuthPayload(token="tok")


@pytest.mark.parametrize("replies", [
    [encode_frame(MsgType.AUTH_RSP, 1, {"success": False, "error": "expired"}, binary=True)],
    [TransportClosed(4401, "bad token")],
])
async def test_refused_token_raises_auth_error(replies: list[Any]) -> None:
    with pytest.raises(AuthError):
        await authenticate(Scripted(*replies), seq=1, token="t", device_id=None, binary=True)


async def test_other_closes_during_auth_are_retryable() -> None:
    t = Scripted(TransportClosed(1001, "going away"))
    with pytest.raises(ConnectionLostError) as info:
        await authenticate(t, seq=1, token="t", device_id=None, binary=True)
    assert not isinstance(info.value, AuthError)
