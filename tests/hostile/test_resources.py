"""Resource abuse: clients that vanish, never read, flood pings or messages. The node
runs in this process, so its memory is this process's VmRSS."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import cast

import pytest

from tests.hostile.helpers import (
    assert_bystander_chats,
    authed,
    health_connections,
    history,
    reply_to,
    rss_bytes,
    still_answers,
)
from tests.hostile.rawws import OP_PING, RawSocket, build_frame
from tests.support.wire import Wire
from tidings.gateway import reading, websocket
from tidings.gateway.connection import Connection
from tidings.protocol.codec import Frame
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType
from tidings.protocol.messages import Payload
from tidings.store.base import NewMessage

MiB = 1 << 20


async def _peers(server, http, raw_token: str, raw_id: int) -> Wire:
    """A peer of ``raw_id`` (they have exchanged a message), online, to watch presence."""
    peer = await authed(server, http)
    await peer.chat(raw_id, "we are peers now")
    return peer


async def _offline_push(peer: Wire, user_id: int, timeout: float) -> None:
    """Wait for ``user_id``'s offline push, pinging every 0.2 s to stay clear of a short
    idle_timeout."""
    offline = {"user_id": user_id, "status": "offline"}
    if offline in peer.skipped_presence:  # it came while the peer awaited a ChatAck
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await peer.send(MsgType.PING)
        try:
            while True:
                t, _, payload = await peer.recv(0.2)
                if t == MsgType.PRESENCE_PUSH and payload == {"user_id": user_id,
                                                              "status": "offline"}:
                    return
        except TimeoutError:
            continue
    raise AssertionError(f"user {user_id} not announced offline within {timeout} s")


async def test_half_open_client_is_reaped_by_the_idle_timeout(server_factory, http):
    """The client vanishes without FIN or RST (it neither sends nor reads, as a dead peer
    behind a NAT): closed 4410 after idle_timeout, unregistered, announced offline."""
    server = await server_factory(idle_timeout=0.5, write_timeout=0.5)
    user_id, token = await server.quick_user()
    raw = await RawSocket.upgrade(server)
    try:
        await raw.auth(token)
        peer = await _peers(server, http, token, user_id)
        raw.writer.transport.pause_reading()  # from here on: a dead peer
        baseline = await health_connections(server, http)
        started = time.monotonic()
        await _offline_push(peer, user_id, 3)
        assert time.monotonic() - started < 0.5 + 0.5 + 1.5
        assert await health_connections(server, http) == baseline - 1
        raw.writer.transport.resume_reading()
        assert await raw.close_code(2) == CloseCode.IDLE_TIMEOUT
    finally:
        await raw.aclose()
    await peer.close()
    await assert_bystander_chats(server, http)


async def _stall(raw: RawSocket) -> None:
    """Stop reading: the kernel buffers fill, then the node's writes block."""
    raw.writer.transport.pause_reading()


async def test_never_reading_client_is_dropped_4413_and_memory_stays_bounded(server_factory,
                                                                             http):
    """A recipient that never reads while 200 KB chats pour in: dropped as a slow consumer
    (4413) within 10 s, with the node's RSS growing by less than 64 MiB; the sender and a
    bystander keep chatting."""
    server = await server_factory(write_timeout=0.5, rate_limit=1000, rate_burst=1000)
    victim_id, victim_token = await server.quick_user()
    raw = await RawSocket.upgrade(server, rcvbuf=4096)
    try:
        await raw.auth(victim_token)
        await _stall(raw)
        conn = server.node.hub.connections(victim_id)[0]
        sender = await authed(server, http)
        before, started, sent = rss_bytes(), time.monotonic(), 0
        big = "z" * 200_000
        while not conn.closed:
            assert time.monotonic() - started < 10, f"not dropped after {sent} chats"
            await sender.chat(victim_id, f"{sent}{big}")
            sent += 1
        assert conn.close_code == CloseCode.SLOW_CONSUMER
        assert rss_bytes() - before < 64 * MiB
        await sender.chat(victim_id, "after the drop")  # stored for the next connection
        await sender.close()
    finally:
        await raw.aclose()
    await assert_bystander_chats(server, http)


async def test_ping_flood_without_reading_pongs_is_throttled_and_bounded(server_factory,
                                                                         http):
    """125-byte WebSocket pings as fast as the socket takes them, pongs never read: the
    node stops reading once its pongs cannot be written (backpressure), so the flood
    stalls and memory stays flat; others are served meanwhile."""
    server = await server_factory()
    _, token = await server.quick_user()
    raw = await RawSocket.upgrade(server, rcvbuf=4096)
    try:
        await raw.auth(token)
        await _stall(raw)
        before, sent = rss_bytes(), 0
        burst = build_frame(OP_PING, b"p" * 125) * 100
        stalled = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            raw.writer.write(burst)
            sent += 100
            try:
                async with asyncio.timeout(0.5):
                    await raw.writer.drain()
            except TimeoutError:
                stalled = True
                break
        assert stalled, f"{sent} pings taken without backpressure"
        assert rss_bytes() - before < 16 * MiB
        await assert_bystander_chats(server, http)
    finally:
        raw.abort()


DROPPED_BUT_KEPT = (
    "a connection closed while a socket write is blocked is never released. aiohttp's "
    "_drain_helper makes every writer await ONE shared future; cancelling a task blocked "
    "there — the writer task in Connection.close() (src/tidings/gateway/connection.py), or "
    "the reader blocked in ws.pong() when the watchdog stops it — cancels that future for "
    "_close_socket's ws.close() too. _close_socket ends cancelled (it catches Exception, not "
    "CancelledError), Gateway.handle's finally re-raises it at `await conn.wait_closed()` "
    "(src/tidings/gateway/websocket.py) and skips service.disconnected(conn); until the peer "
    "sends or resets, the reader also stays parked in ws.receive() (the watchdog skips "
    "closed connections) and the socket stays open. The hub keeps the connection forever: "
    "the user stays online, /api/health counts it, and it holds a max_connections_per_user "
    "slot (3 such drops lock the user out: MsgAuthRsp WS_TOO_MANY_CONNECTIONS, close 4409)")


async def _keep_alive(peer: Wire) -> None:
    while True:
        await peer.send(MsgType.PING)
        await asyncio.sleep(0.2)


async def _flood_pings_until_the_node_cannot_write(raw: RawSocket, conn: Connection) -> None:
    """Ping as fast as the socket takes it until the node's pongs no longer fit: they fill
    the kernel buffers (nothing reads them), then the node's transport buffer past its
    high-water mark, where its reader waits in ``ws.pong()`` — the socket is full.

    Watched on the node (it runs in this process), not guessed from our own writes: on a
    loaded machine a write that takes long is no proof that the node is stuck, and the
    flood only takes longer. The timeout is there against a hang, not to pace anything."""
    burst = build_frame(OP_PING, b"p" * 125) * 100
    transport = cast(asyncio.Transport, conn._socket._transport)
    _, high_water = transport.get_write_buffer_limits()
    async with asyncio.timeout(60):
        while transport.get_write_buffer_size() <= high_water and not conn.closed:
            raw.writer.write(burst)
            with contextlib.suppress(TimeoutError):  # backed up: look at the node again
                async with asyncio.timeout(0.1):
                    await raw.writer.drain()


@pytest.mark.parametrize("trigger", ["slow-consumer", "idle-timeout-during-ping-flood"])
async def test_a_connection_dropped_while_its_socket_is_full_is_released(server_factory,
                                                                         http, trigger):
    # idle_timeout 2 s: the node runs in this process, and a loaded machine can stall the
    # loop long enough for a peer pinging every 0.2 s to look idle for a second.
    server = await server_factory(idle_timeout=2.0, write_timeout=0.5, rate_limit=1000,
                                  rate_burst=1000, max_connections_per_user=2)
    victim_id, victim_token = await server.quick_user()
    raw = await RawSocket.upgrade(server, rcvbuf=4096)
    try:
        await raw.auth(victim_token)
        peer = await _peers(server, http, victim_token, victim_id)
        baseline = await health_connections(server, http)
        await _stall(raw)
        conn = server.node.hub.connections(victim_id)[0]
        if trigger == "slow-consumer":
            big = "z" * 200_000
            async with asyncio.timeout(10):
                while not conn.closed:
                    await peer.chat(victim_id, big)
        else:
            # The peer pings meanwhile: a flood slowed by a loaded machine must not let
            # the peer's own idle_timeout expire before the victim's.
            keepalive = asyncio.create_task(_keep_alive(peer))
            try:
                await _flood_pings_until_the_node_cannot_write(raw, conn)
            finally:
                keepalive.cancel()
        # The node must forget the connection: offline for its peer, out of the counts, and
        # every slot of the user free again.
        await _offline_push(peer, victim_id, 10.0)
        assert await health_connections(server, http) == baseline - 1
        again = [await authed(server, http, victim_token, device_id=f"d{i}")
                 for i in range(2)]
        for wire in again:
            await wire.close()
    finally:
        raw.abort()
    await assert_bystander_chats(server, http)


async def test_chat_flood_is_rate_limited_and_refused_chats_are_not_stored(server_factory,
                                                                           http):
    """60 chats pipelined at rate_limit 5/s, burst 10: the excess is answered
    WS_RATE_LIMITED (with its seq) and not stored, the connection stays, and a bystander's
    round trip stays fast during the flood."""
    server = await server_factory(rate_limit=5, rate_burst=10)
    recipient, r_token = await server.quick_user()
    flooder_id, token = await server.quick_user()
    flooder = await authed(server, http, token)
    bystander = await authed(server, http)
    started = time.monotonic()
    for i in range(60):
        await flooder.send(MsgType.CHAT, {"to": recipient, "type": "text", "content": f"f{i}"},
                           seq=10_000 + i)
    rtt = time.monotonic()
    await still_answers(bystander)
    assert time.monotonic() - rtt < 1.0
    answers: dict[int, str] = {}
    while len(answers) < 60:
        t, seq, payload = await reply_to(flooder)
        answers[seq] = "ack" if t == MsgType.CHAT_ACK else payload["code"]
    elapsed = time.monotonic() - started
    acked = sorted(seq - 10_000 for seq, a in answers.items() if a == "ack")
    assert set(answers.values()) == {"ack", ErrorCode.RATE_LIMITED}
    assert 9 <= len(acked) <= 10 + 5 * elapsed + 1  # the burst, less the MsgAuth
    stored = [m["content"] for m in await history(server, http, r_token, flooder_id)]
    assert stored == [f"f{i}" for i in acked]
    await asyncio.sleep(0.3)
    await still_answers(flooder)
    await flooder.close()
    await bystander.close()
    await assert_bystander_chats(server, http)


PIPELINE_4413 = (
    "a client that pipelines more frames than send_queue_size (100) is closed 4413 as a slow "
    "consumer although it reads everything: Gateway._serve (src/tidings/gateway/websocket.py) "
    "does not yield between frames already buffered by aiohttp (ws.receive() returns at once), "
    "and every reply is queued with Connection.push, which closes 4413 at 100 queued frames "
    "before the writer task ever runs; ChatAcks of one commit batch are pushed together the "
    "same way. Contradicts docs/protocol.md (limits: over the rate limit a frame is answered "
    "WS_RATE_LIMITED and the connection stays) and breaks the SDK's resend of >100 unacked "
    "chats after a reconnect (4413, reconnect, resend, 4413, ...). Default settings: 120 "
    "pipelined MsgPing get 12 MsgPong, then 4413")


@pytest.mark.parametrize("what, settings", [
    ("pings-default-settings", {}),
    ("chats-under-the-rate-limit", {"rate_limit": 10_000, "rate_burst": 10_000}),
    ("chats-over-the-rate-limit", {"rate_limit": 20, "rate_burst": 20}),
])
async def test_pipelined_frames_are_all_answered_and_the_connection_stays(server_factory, http,
                                                                          what, settings):
    """300 frames written back to back by a client that reads all the while."""
    server = await server_factory(**settings)
    recipient, _ = await server.quick_user()
    wire = await authed(server, http)
    answers: list[str] = []

    async def read_all() -> None:
        while len(answers) < 300:
            t, _, payload = await reply_to(wire)
            answers.append(payload["code"] if t == MsgType.ERROR else MsgType(t).name)

    reader = asyncio.create_task(read_all())
    try:
        for i in range(300):
            if what.startswith("pings"):
                await wire.send(MsgType.PING, seq=1 + i)
            else:
                await wire.send(MsgType.CHAT, {"to": recipient, "type": "text",
                                               "content": f"p{i}"}, seq=1 + i)
        async with asyncio.timeout(10):
            await reader
    finally:
        reader.cancel()
    assert set(answers) <= {"PONG", "CHAT_ACK", ErrorCode.RATE_LIMITED}, set(answers)
    await asyncio.sleep(0.2)  # the bucket refills (20/s) before the check ping
    await still_answers(wire)
    await wire.close()
    await assert_bystander_chats(server, http)


async def test_flood_before_auth_is_rate_limited_and_the_deadline_holds(server_factory, http):
    """Frames before MsgAuth count against the bucket too (docs: limits), and answering
    them never extends auth_timeout: the socket is closed 4408 on time."""
    server = await server_factory(rate_limit=5, rate_burst=10, auth_timeout=1.0)
    wire = await Wire.open(http, server.ws_url)
    started = time.monotonic()
    for _ in range(100):
        await wire.send(MsgType.PING)
    codes = []
    while len(codes) < 100:
        _, _, payload = await wire.recv()
        codes.append(payload["code"])
    assert codes.count(ErrorCode.NOT_AUTHENTICATED) <= 10 + 5 * (time.monotonic() - started)
    assert codes.count(ErrorCode.RATE_LIMITED) >= 80
    assert await wire.closed_with(3) == CloseCode.AUTH_TIMEOUT
    assert time.monotonic() - started < 1.0 + 1.5
    await assert_bystander_chats(server, http)


async def test_delivery_acks_of_a_busy_receiver_are_not_rate_limited(server_factory, http,
                                                                     monkeypatch):
    """A device acking 40 pushes within a second at rate_limit 5/s, burst 10: acks that
    confirm more than before are never refused (the server's pushes bound them); the same
    ack sent again and again is a flood like any other. Each ack's payload is decoded once,
    for the rate limit and the handler both."""
    decoded: Counter[int] = Counter()  # seq of an ack -> times its payload was decoded
    real_decode = websocket.decode_payload

    def counting_decode(frame: Frame) -> Payload | None:
        if frame.type == MsgType.ACK:
            decoded[frame.seq] += 1
        return real_decode(frame)

    for module in (websocket, reading):  # the read loop and its ack_of
        monkeypatch.setattr(module, "decode_payload", counting_decode)
    server = await server_factory(rate_limit=5, rate_burst=10, sync_page_size=1)
    sender, _ = await server.quick_user()
    receiver, token = await server.quick_user()
    stored = await server.node.store.append_messages(
        [NewMessage(sender, "d", receiver, "text", f"m{i}") for i in range(40)])
    ids = [r.message.id for r in stored]
    wire = await Wire.open(http, server.ws_url)
    await wire.send(MsgType.AUTH, {"token": token, "device_id": "phone"})
    refused = 0
    got: list[int] = []
    while len(got) < len(ids):
        t, _, payload = await wire.recv()
        if t == MsgType.SYNC_RSP:
            for m in payload["messages"]:
                got.append(m["message_id"])
                await wire.send(MsgType.ACK, {"message_id": m["message_id"],
                                              "status": "delivered"})
        elif t == MsgType.ERROR:
            refused += 1
    assert got == ids and refused == 0
    for _ in range(30):  # nothing new to confirm: these take tokens
        await wire.send(MsgType.ACK, {"message_id": ids[-1], "status": "delivered"})
    codes = []
    while len(codes) < 19:  # at least 30 - burst 10 - refill are refused
        t, _, payload = await reply_to(wire)
        if t == MsgType.ERROR:
            codes.append(payload["code"])
    assert set(codes) == {ErrorCode.RATE_LIMITED}
    async with asyncio.timeout(5):
        while await server.node.store.get_cursor(receiver, "phone") != ids[-1]:
            await asyncio.sleep(0.05)
    assert len(decoded) >= len(ids) and max(decoded.values()) == 1
    await wire.close()
    await assert_bystander_chats(server, http)
