"""Auth, heartbeats, limits and bad input on /ws, each with a bystander that keeps chatting."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import jwt
import msgspec
import pytest

from tests.support.wire import Wire
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType

pytestmark = pytest.mark.asyncio


async def _bystander_still_chats(server, http) -> None:
    _, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    a = await Wire.ready(http, server.ws_url, a_token)
    b = await Wire.ready(http, server.ws_url, b_token)
    ack = await a.chat(b_id, "still here")
    _, push = await b.expect(MsgType.CHAT_PUSH)
    assert push["message_id"] == ack["message_id"]


async def test_bad_token_is_refused_then_closed_with_4401(server, http):
    wire = await Wire.open(http, server.ws_url)
    seq = await wire.send(MsgType.AUTH, {"token": "tdg_not-a-real-token"})
    got, rsp = await wire.expect(MsgType.AUTH_RSP)
    assert got == seq and rsp["success"] is False and ErrorCode.AUTH_FAILED in rsp["error"]
    assert await wire.closed_with() == CloseCode.AUTH_FAILED


async def test_expired_token_is_refused(server, http):
    user_id, _ = await server.new_user()
    token, _ = await server.node.service.auth.issue(user_id, ttl_ms=-1)
    wire = await Wire.open(http, server.ws_url)
    await wire.send(MsgType.AUTH, {"token": token})
    _, rsp = await wire.expect(MsgType.AUTH_RSP)
    assert rsp["success"] is False and "expired" in rsp["error"]
    assert await wire.closed_with() == CloseCode.AUTH_FAILED


async def test_no_auth_within_the_timeout_closes_with_4408(server_factory, http):
    server = await server_factory(auth_timeout=0.3)
    wire = await Wire.open(http, server.ws_url)
    started = time.monotonic()
    assert await wire.closed_with() == CloseCode.AUTH_TIMEOUT
    assert time.monotonic() - started < 3


async def test_frames_before_auth_get_not_authenticated(server, http):
    wire = await Wire.open(http, server.ws_url)
    for type_, payload in ((MsgType.PING, None), (MsgType.CHAT, {"to": 1}), (77, {})):
        seq = await wire.send(type_, payload)
        got, err = await wire.expect(MsgType.ERROR)
        assert got == seq and err["code"] == ErrorCode.NOT_AUTHENTICATED


async def test_jwt_signed_with_the_configured_secret_authenticates(server_factory, http):
    secret = "s3cret-for-tests-only-32-bytes-long!"
    server = await server_factory(jwt_secret=secret)
    user_id, _ = await server.new_user()
    good = jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 60}, secret, "HS256")
    wire = await Wire.open(http, server.ws_url)
    rsp = await wire.auth(good)
    assert rsp["user_id"] == user_id
    for bad in (jwt.encode({"sub": str(user_id), "exp": int(time.time()) - 5}, secret, "HS256"),
                jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 60}, "wrong-key-x" * 4,
                           "HS256"),
                jwt.encode({"sub": str(user_id)}, secret, "HS256"),
                jwt.encode({"sub": "999999", "exp": int(time.time()) + 60}, secret, "HS256")):
        wire = await Wire.open(http, server.ws_url)
        await wire.send(MsgType.AUTH, {"token": bad})
        _, rsp = await wire.expect(MsgType.AUTH_RSP)
        assert rsp["success"] is False
        assert await wire.closed_with() == CloseCode.AUTH_FAILED


async def test_ping_is_answered_with_pong_and_same_seq(server, http, connect):
    _, token = await server.new_user()
    wire = await connect(token)
    seq = await wire.send(MsgType.PING, seq=99)
    got, _ = await wire.expect(MsgType.PONG)
    assert got == seq == 99


async def test_silent_connection_is_closed_but_pings_keep_it_alive(server_factory, http):
    server = await server_factory(idle_timeout=0.5)
    _, token = await server.new_user()
    lively = await Wire.ready(http, server.ws_url, token, "lively")
    silent = await Wire.ready(http, server.ws_url, token, "silent")
    for _ in range(4):
        await asyncio.sleep(0.25)
        await lively.send(MsgType.PING)
        await lively.expect(MsgType.PONG)
    assert await silent.closed_with() == CloseCode.IDLE_TIMEOUT
    await lively.ws.ping(b"ws-level")  # WebSocket pings count as activity too
    await asyncio.sleep(0.3)
    await lively.ws.ping(b"again")
    await asyncio.sleep(0.3)
    await lively.send(MsgType.PING)
    await lively.expect(MsgType.PONG)


@pytest.mark.parametrize("data, code", [
    (b"\xc1", ErrorCode.INVALID_MESSAGE),
    (b"\x93\x01\x02\x03", ErrorCode.INVALID_MESSAGE),
    (msgspec.msgpack.encode({"seq": 1}), ErrorCode.INVALID_MESSAGE),
    (msgspec.msgpack.encode({"type": "chat", "seq": 1}), ErrorCode.INVALID_MESSAGE),
    (msgspec.msgpack.encode({"type": 2, "seq": 1, "payload": b"\xc1"}), ErrorCode.INVALID_PAYLOAD),
    (msgspec.msgpack.encode({"type": 2, "seq": 1, "payload": msgspec.msgpack.encode(
        {"to": "bob", "type": "text", "content": "x"})}), ErrorCode.INVALID_PAYLOAD),
    (msgspec.msgpack.encode({"type": 2, "seq": 1, "payload": msgspec.msgpack.encode(
        {"to": 2**64 - 1, "type": "text", "content": "x"})}), ErrorCode.INVALID_PAYLOAD),
    (msgspec.msgpack.encode({"type": 2, "seq": 1, "payload": msgspec.msgpack.encode(
        {"to": 1, "type": "video", "content": "x"})}), ErrorCode.INVALID_PAYLOAD),
    (msgspec.msgpack.encode({"type": 102, "seq": 1}), ErrorCode.UNKNOWN_TYPE),
    (msgspec.msgpack.encode({"type": 1, "seq": 1, "payload": msgspec.msgpack.encode(
        {"token": "x"})}), ErrorCode.ALREADY_AUTHENTICATED),
    ("not json", ErrorCode.INVALID_MESSAGE),
    ("[" * 5000 + "]" * 5000, ErrorCode.INVALID_MESSAGE),
    ('{"type":2,"seq":1,"payload":{"to":1,"type":"text"}}', ErrorCode.INVALID_PAYLOAD),
    ('{"type":2,"seq":-1,"payload":{}}', ErrorCode.INVALID_MESSAGE),
])
async def test_bad_frames_get_a_coded_error_and_the_connection_stays(server, http, connect,
                                                                      data, code):
    _, token = await server.new_user()
    wire = await connect(token)
    if isinstance(data, str):
        await wire.ws.send_str(data)
    else:
        await wire.ws.send_bytes(data)
    _, err = await wire.expect(MsgType.ERROR)
    assert err["code"] == code, err
    await wire.send(MsgType.PING)
    await wire.expect(MsgType.PONG)
    await _bystander_still_chats(server, http)


async def test_oversize_frame_closes_with_1009(server_factory, http):
    server = await server_factory(max_frame_bytes=64 * 1024)
    _, token = await server.new_user()
    wire = await Wire.ready(http, server.ws_url, token)
    await wire.ws.send_bytes(b"\x00" * (64 * 1024 + 1))
    assert await wire.closed_with() == CloseCode.MESSAGE_TOO_BIG
    await _bystander_still_chats(server, http)


async def test_flood_is_rate_limited_and_the_connection_kept(server_factory, http):
    server = await server_factory(rate_limit=5, rate_burst=10)
    _, token = await server.new_user()
    wire = await Wire.ready(http, server.ws_url, token)
    for _ in range(30):
        await wire.send(MsgType.PING)
    codes = []
    while len(codes) < 30:
        t, _, payload = await wire.recv()
        if t != MsgType.PRESENCE_PUSH:
            codes.append(payload.get("code") if t == MsgType.ERROR else "pong")
    assert codes.count("pong") >= 9 and codes.count(ErrorCode.RATE_LIMITED) >= 15
    await asyncio.sleep(0.5)
    await wire.send(MsgType.PING)
    await wire.expect(MsgType.PONG)


async def test_slow_consumer_is_dropped_and_recovers_by_sync(server_factory, http):
    server = await server_factory(send_queue_size=4, rate_limit=1000, rate_burst=1000)
    _, alice_token = await server.new_user()
    bob_id, bob_token = await server.new_user()
    alice = await Wire.ready(http, server.ws_url, alice_token)
    # Bob never reads: once the kernel buffers are full, his queue fills up.
    bob = await Wire.ready(http, server.ws_url, bob_token, "slow", max_msg_size=0)
    conn = server.node.hub.connections(bob_id)[0]
    big = "x" * 200_000
    sent = []
    for i in range(200):
        sent.append((await alice.chat(bob_id, f"{i}{big}"))["message_id"])
        if conn.closed:
            break
    assert conn.closed and conn.close_code == CloseCode.SLOW_CONSUMER
    await _bystander_still_chats(server, http)
    bob = await Wire.open(http, server.ws_url, max_msg_size=0)
    await bob.auth(bob_token, "slow")
    assert [m["message_id"] for m in await bob.backlog()] == sent


async def test_cross_site_origin_is_refused_same_host_allowed(server_factory, http):
    server = await server_factory(allowed_origins=["https://app.example"])
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(server.ws_url, origin="https://evil.example")
    assert info.value.status == 403
    host = server.http_url.removeprefix("http://")
    for origin in ("https://app.example", f"http://{host}"):
        ws = await http.ws_connect(server.ws_url, origin=origin)
        await ws.close()


async def test_a_write_blocked_past_write_timeout_drops_the_connection(server_factory, http):
    server = await server_factory(write_timeout=0.5, send_queue_size=10_000,
                                  rate_limit=1000, rate_burst=1000)
    _, alice_token = await server.quick_user()
    bob_id, bob_token = await server.quick_user()
    alice = await Wire.ready(http, server.ws_url, alice_token)
    bob = await Wire.open(http, server.ws_url, max_msg_size=0)  # never reads from here on
    await bob.auth(bob_token, "stalled")
    await bob.backlog()
    conn = server.node.hub.connections(bob_id)[0]
    big = "y" * 500_000
    for i in range(40):  # ~20 MB: far more than the socket buffers hold
        await alice.chat(bob_id, f"{i}{big}")
        if conn.closed:
            break
    async with asyncio.timeout(5):
        while not conn.closed:
            await asyncio.sleep(0.05)
    assert conn.close_code == CloseCode.SLOW_CONSUMER
    await _bystander_still_chats(server, http)


async def test_an_idle_connection_holds_no_task_and_wakes_on_its_next_frame(server, http,
                                                                             connect):
    _, token = await server.new_user()
    wire = await connect(token)
    gateway = server.node.gateway
    [conn] = [c for c in gateway.connections if c.user_id]
    async with asyncio.timeout(10):  # its reading task ends once the auth is answered
        while conn.reader is not None:
            await asyncio.sleep(0.01)
        # The task drops conn.reader in its last step; it leaves _serving a loop turn
        # later (its done callback), which a loaded machine showed as a race.
        while gateway._serving:
            await asyncio.sleep(0.01)
    assert conn.reader is None and not gateway._serving
    seq = await wire.send(MsgType.PING, seq=7)
    got, _ = await wire.expect(MsgType.PONG)
    assert got == seq == 7
    await wire.ws.close()
    async with asyncio.timeout(10):  # its end wakes it: settled and unregistered
        while conn in gateway.connections:
            await asyncio.sleep(0.01)
    assert conn.closed


def _count_reader_tasks(gateway, monkeypatch):
    """How many reader tasks the gateway starts from now on: call the result to know."""
    started = []
    run = gateway._run

    async def counted(reading):
        started.append(reading)
        await run(reading)

    monkeypatch.setattr(gateway, "_run", counted)
    return lambda: len(started)


async def _parked(gateway, conn) -> None:
    async with asyncio.timeout(10):  # as in the test above: the task ends, then leaves
        while conn.reader is not None or gateway._serving:
            await asyncio.sleep(0.01)


async def test_chats_to_known_users_take_no_task_and_keep_their_order(server, http, connect,
                                                                       monkeypatch):
    """A parked connection's chats are stored from the socket's callback (no reader
    task); the first other frame, and everything after it, goes to a task, in order."""
    a_id, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    b = await connect(b_token)  # authenticated: b is known to exist
    a = await connect(a_token)
    gateway = server.node.gateway
    [conn] = [c for c in gateway.connections if c.user_id == a_id]
    await _parked(gateway, conn)
    runs = _count_reader_tasks(gateway, monkeypatch)
    seqs = [await a.send(MsgType.CHAT, {"to": b_id, "type": "text", "content": f"m{n}"})
            for n in range(20)]
    acks = {}
    while len(acks) < 20:
        t, seq, payload = await a.recv()
        if t == MsgType.CHAT_ACK:
            acks[seq] = payload["message_id"]
    assert runs() == 0  # not one task for twenty chats
    assert [acks[s] for s in seqs] == sorted(acks.values())  # stored in the order sent
    # A ping among chats: it and what follows it are read by a task, still in order.
    more = [await a.send(MsgType.CHAT, {"to": b_id, "type": "text", "content": "x"}),
            await a.send(MsgType.PING),
            await a.send(MsgType.CHAT, {"to": b_id, "type": "text", "content": "y"})]
    answers = {}
    while len(answers) < 3:
        t, seq, payload = await a.recv()
        if seq in more:
            answers[seq] = (t, payload)
    assert answers[more[1]][0] == MsgType.PONG and runs() >= 1
    assert answers[more[0]][1]["message_id"] < answers[more[2]][1]["message_id"]
    pushed = []
    while len(pushed) < 22:
        t, _, payload = await b.recv()
        if t == MsgType.CHAT_PUSH:
            pushed.append(payload["content"])
    assert pushed == [f"m{n}" for n in range(20)] + ["x", "y"]


async def test_delivery_acks_take_no_task_and_read_acks_wait_for_the_store(server, http,
                                                                          connect,
                                                                          monkeypatch):
    _, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    a = await connect(a_token)
    b = await connect(b_token, "phone")
    gateway = server.node.gateway
    [conn] = [c for c in gateway.connections if c.user_id == b_id]
    acks = [await a.chat(b_id, f"m{n}") for n in range(10)]
    ids = [ack["message_id"] for ack in acks]
    pushed = []
    while len(pushed) < 10:
        t, _, payload = await b.recv()
        if t == MsgType.CHAT_PUSH:
            pushed.append(payload["message_id"])
    assert pushed == ids
    await _parked(gateway, conn)
    runs = _count_reader_tasks(gateway, monkeypatch)
    for message_id in ids:
        await b.send(MsgType.ACK, {"message_id": message_id, "status": "delivered"})
    async with asyncio.timeout(10):  # the device's cursor is stored
        while await server.node.store.get_cursor(b_id, "phone") < ids[-1]:
            await asyncio.sleep(0.02)
    assert runs() == 0  # not one task for ten delivery acks
    await b.send(MsgType.ACK, {"message_id": ids[0], "status": "read"})
    while True:  # the delivered receipts come first
        t, _, payload = await a.recv()
        if t == MsgType.RECEIPT_PUSH and payload["status"] == "read":
            assert payload["message_ids"] == [ids[0]]
            break
    assert runs() >= 1  # a read ack marks the message in the store: the reader task's
    seq = await b.send(MsgType.ACK, {"message_id": ids[-1] + 100, "status": "delivered"})
    got, err = await b.expect(MsgType.ERROR, skip=(MsgType.PRESENCE_PUSH,))
    assert got == seq and err["code"] == ErrorCode.MESSAGE_NOT_FOUND


async def test_a_chat_that_waits_for_a_lookup_keeps_the_next_one_behind_it(server, http,
                                                                           connect):
    """A chat to a user this node has not seen yet needs a store lookup (a task); a
    chat to a known user sent right behind it must not overtake it."""
    _, a_token = await server.quick_user()
    known_id, known_token = await server.quick_user()
    unseen_id, _ = await server.quick_user()  # exists, never connected: not known yet
    await connect(known_token)
    a = await connect(a_token)
    for n in range(5):  # each round: a new unseen user first
        if n:
            unseen_id, _ = await server.quick_user()
        first = await a.send(MsgType.CHAT, {"to": unseen_id, "type": "text", "content": "1"})
        second = await a.send(MsgType.CHAT, {"to": known_id, "type": "text", "content": "2"})
        acks = {}
        while len(acks) < 2:
            t, seq, payload = await a.recv()
            if t == MsgType.CHAT_ACK:
                acks[seq] = payload["message_id"]
        assert acks[first] < acks[second]


async def test_a_failure_in_the_fast_path_is_answered_and_the_connection_still_ends(
        server, http, connect, monkeypatch):
    a_id, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    await connect(b_token)
    a = await connect(a_token)
    gateway = server.node.gateway
    [conn] = [c for c in gateway.connections if c.user_id == a_id]
    await _parked(gateway, conn)

    def broken(type_: int) -> None:
        raise RuntimeError("metrics broke")

    monkeypatch.setattr(server.node.service.metrics, "frame_in", broken)
    seq = await a.send(MsgType.CHAT, {"to": b_id, "type": "text", "content": "x"})
    got, err = await a.expect(MsgType.ERROR, skip=(MsgType.PRESENCE_PUSH,))
    assert got == seq and err["code"] == ErrorCode.INTERNAL_ERROR
    monkeypatch.undo()
    await a.chat(b_id, "and on it goes")
    await _parked(gateway, conn)

    def unsure(user_id: int) -> bool:
        raise RuntimeError("no idea")

    # Failing before the frame is taken, the fast path leaves it to the task, which stores it.
    monkeypatch.setattr(server.node.service, "knows_user", unsure)
    await a.chat(b_id, "the task's")
    await a.ws.close()
    async with asyncio.timeout(10):  # its end still reaches the gateway: unregistered
        while conn in gateway.connections:
            await asyncio.sleep(0.01)


async def test_a_chat_flood_is_rate_limited_and_the_connection_kept(server_factory, http):
    """The fast path leaves a chat over the rate limit to the read loop, which answers it."""
    server = await server_factory(rate_limit=5, rate_burst=10)
    _, a_token = await server.quick_user()
    b_id, _ = await server.quick_user()
    a = await Wire.ready(http, server.ws_url, a_token)
    await a.chat(b_id, "hello")  # b looked up once: from now on its chats need no task
    for _ in range(30):
        await a.send(MsgType.CHAT, {"to": b_id, "type": "text", "content": "flood"})
    codes = []
    while len(codes) < 30:
        t, _, payload = await a.recv()
        if t in (MsgType.CHAT_ACK, MsgType.ERROR):
            codes.append(payload.get("code") if t == MsgType.ERROR else "ack")
    assert codes.count("ack") >= 5 and codes.count(ErrorCode.RATE_LIMITED) >= 15
    await asyncio.sleep(0.5)
    await a.chat(b_id, "after the flood")
