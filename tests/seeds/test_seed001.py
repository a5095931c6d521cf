"""Seed 001 (连接模块设计, the ``/ws`` connection module), frames exactly as the seed
writes them, against ``tidings serve`` on SQLite and on PostgreSQL.

Sections covered:
- 2.1 ``WS /ws``, the connection flow (MsgAuth first, then two-way traffic).
- 2.2 MessagePack frames ``{type, seq, payload}`` with ``payload`` MessagePack bytes;
  every type code 1-6 and 101-106 and every payload struct of 2.2.3.
- 3.3 lifecycle: offline messages pushed after a successful auth, presence announced;
  a failed auth closes the connection.
- 3.4 heartbeat: MsgPing answered at once by MsgPong; a silent connection is closed.
- 3.5 routing, 3.6 offline messages (delivered once acked), 3.7 presence broadcast,
  4.2 acks (delivered/read).
- 5.1/5.2 error codes: WS_INVALID_MESSAGE, WS_NOT_AUTHENTICATED, WS_AUTH_FAILED,
  WS_INVALID_PAYLOAD, WS_USER_NOT_FOUND, WS_RATE_LIMITED (WS_INTERNAL_ERROR needs a
  failing store: tests/chaos and tests/unit cover it).
- 6.1 limits (3 connections per user, 60 connections at once, queue 100, read timeout
  60 s, write timeout 10 s), 6.2 graceful shutdown, 7 Origin check and the 1 MB message
  limit, 8 multiple devices online at once and concurrent connections.

Not here: 4.3 reconnection is the client's (the Python client, tests/client/); the
total-connection cap of 6.1 (60) is issue 15 item 9's. Tidings extensions (ChatAck 107,
ReceiptPush 108, ``device_id``) appear where the seed leaves a gap; see
docs/protocol.md "Seed compatibility".
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import aiohttp
import msgspec
import pytest

from tests.seeds.servers import SeedNode, SeedSocket, User, http, node, running_node
from tests.support.nodes import TIDINGS

__all__ = ["http", "node"]  # fixtures, imported for pytest

# 2.2.2, as the seed numbers them
MsgAuth, MsgChat, MsgAck, MsgSyncReq, MsgPresence, MsgPing = 1, 2, 3, 4, 5, 6
MsgAuthRsp, MsgChatPush, MsgSyncRsp, MsgPresencePush, MsgPong, MsgError = (
    101, 102, 103, 104, 105, 106)


async def online(http: aiohttp.ClientSession, node: SeedNode, user: User) -> SeedSocket:
    sock = await SeedSocket.open(http, node)
    await sock.login(user)
    return sock


async def chat(sock: SeedSocket, to: int, content: str, kind: str = "text") -> int:
    """MsgChat; the message id from the server's acknowledgement (ChatAck, 107)."""
    seq = await sock.send(MsgChat, {"to": to, "type": kind, "content": content})
    got, ack = await sock.expect(107)
    assert got == seq
    return int(ack["message_id"])


async def test_auth_success(http, node) -> None:
    user = await node.user(http)
    sock = await SeedSocket.open(http, node)
    seq = await sock.send(MsgAuth, {"token": user.token})
    got, rsp = await sock.expect(MsgAuthRsp)
    assert got == seq
    assert rsp["success"] is True and rsp["user_id"] == user.id
    assert "error" not in rsp  # omitempty
    await sock.close()


async def test_auth_failure_closes_the_connection(http, node) -> None:
    sock = await SeedSocket.open(http, node)
    await sock.send(MsgAuth, {"token": "not-a-token"})
    _, rsp = await sock.expect(MsgAuthRsp)
    assert rsp["success"] is False
    assert rsp["error"].startswith("WS_AUTH_FAILED")
    assert "user_id" not in rsp
    assert await sock.close_code() == 4401


async def test_every_message_needs_auth_first(http, node) -> None:
    sock = await SeedSocket.open(http, node)
    seq = await sock.send(MsgChat, {"to": 1, "type": "text", "content": "hi"})
    got, err = await sock.expect(MsgError)
    assert got == seq
    assert err["code"] == "WS_NOT_AUTHENTICATED" and err["message"]
    await sock.close()


@pytest.mark.parametrize("kind", ["text", "voice", "image"])
async def test_chat_is_pushed_to_the_recipient(http, node, kind) -> None:
    alice, bob = await node.user(http), await node.user(http)
    a, b = await online(http, node, alice), await online(http, node, bob)
    content = "hello" if kind == "text" else "media-7f3a"  # "消息内容或媒体ID"
    message_id = await chat(a, bob.id, content, kind)
    _, push = await b.expect(MsgChatPush)
    assert push["message_id"] == message_id
    assert (push["from"], push["to"], push["type"], push["content"]) == (
        alice.id, bob.id, kind, content)
    await a.close()
    await b.close()


async def test_offline_messages_are_pushed_after_auth_and_acked(http, node) -> None:
    alice, bob = await node.user(http), await node.user(http)
    a = await online(http, node, alice)
    ids = [await chat(a, bob.id, f"m{i}") for i in range(3)]
    b = await online(http, node, bob)  # login() reads the MsgSyncRsp pages
    assert [m["message_id"] for m in b.offline] == ids
    assert {m["status"] for m in b.offline} == {"sent"}
    await b.send(MsgAck, {"message_id": ids[-1], "status": "delivered"})
    await b.send(MsgAck, {"message_id": ids[0], "status": "read"})
    # 3.6 "更新消息状态为delivered", 4.2: the statuses as stored
    async with asyncio.timeout(10):
        while True:
            await b.send(MsgSyncReq, {"last_message_id": 0, "last_sync_time": 0})
            _, page = await b.expect(MsgSyncRsp)
            statuses = [m["status"] for m in page["messages"]]
            if statuses == ["read", "delivered", "delivered"]:
                break
            await asyncio.sleep(0.1)
    assert page["has_more"] is False
    await a.close()
    await b.close()


async def test_sync_request_pages_after_last_message_id(http, node) -> None:
    alice, bob = await node.user(http), await node.user(http)
    a = await online(http, node, alice)
    ids = [await chat(a, bob.id, f"s{i}") for i in range(3)]
    b = await online(http, node, bob)
    seq = await b.send(MsgSyncReq, {"last_message_id": ids[0], "last_sync_time": 1698249600})
    got, page = await b.expect(MsgSyncRsp)
    assert got == seq
    assert [m["message_id"] for m in page["messages"]] == ids[1:]
    assert page["has_more"] is False
    await a.close()
    await b.close()


async def presence(sock: SeedSocket, user_id: int, status: str) -> None:
    """Read MsgPresencePush frames until ``{user_id, status}`` (each read bounded)."""
    while True:
        _, push = await sock.expect(MsgPresencePush)
        assert set(push) == {"user_id", "status"}
        if push == {"user_id": user_id, "status": status}:
            return


async def test_presence_is_broadcast(http, node) -> None:
    alice, bob = await node.user(http), await node.user(http)
    a = await online(http, node, alice)
    await chat(a, bob.id, "so that we are peers")
    b = await online(http, node, bob)
    await presence(a, bob.id, "online")
    await b.send(MsgPresence, {"status": "away"})
    await presence(a, bob.id, "away")
    await presence(b, bob.id, "away")  # the user's own connections hear it too
    await b.close()
    await presence(a, bob.id, "offline")
    await a.close()


@pytest.mark.parametrize("payload", [None, {}], ids=["nil", "empty-map"])
async def test_ping_is_answered_with_pong(http, node, payload) -> None:
    sock = await online(http, node, await node.user(http))
    seq = 77
    envelope = {"type": MsgPing, "seq": seq,
                "payload": None if payload is None else msgspec.msgpack.encode(payload)}
    await sock.ws.send_bytes(msgspec.msgpack.encode(envelope))
    got, _ = await sock.expect(MsgPong)
    assert got == seq
    await sock.close()


async def test_invalid_message(http, node) -> None:
    sock = await online(http, node, await node.user(http))
    await sock.ws.send_bytes(b"\xc1 not messagepack")
    _, err = await sock.expect(MsgError)
    assert err["code"] == "WS_INVALID_MESSAGE"
    await sock.close()


async def test_invalid_payload(http, node) -> None:
    sock = await online(http, node, await node.user(http))
    seq = await sock.send(MsgChat, {"to": "bob", "type": "text", "content": "x"})
    got, err = await sock.expect(MsgError)
    assert got == seq and err["code"] == "WS_INVALID_PAYLOAD"
    await sock.close()


async def test_user_not_found(http, node) -> None:
    sock = await online(http, node, await node.user(http))
    seq = await sock.send(MsgChat, {"to": 987654321, "type": "text", "content": "x"})
    got, err = await sock.expect(MsgError)
    assert got == seq and err["code"] == "WS_USER_NOT_FOUND"
    await sock.close()


async def test_three_connections_per_user(http, node) -> None:
    user = await node.user(http)
    socks = [await online(http, node, user) for _ in range(3)]  # 多设备同时在线
    fourth = await SeedSocket.open(http, node)
    await fourth.send(MsgAuth, {"token": user.token})
    _, rsp = await fourth.expect(MsgAuthRsp)
    assert rsp["success"] is False and "WS_TOO_MANY_CONNECTIONS" in rsp["error"]
    other = await node.user(http)
    o = await online(http, node, other)
    message_id = await chat(o, user.id, "to every device")
    for sock in socks:
        _, push = await sock.expect(MsgChatPush)
        assert push["message_id"] == message_id
        await sock.close()
    await o.close()


async def test_sixty_concurrent_connections(http, node) -> None:
    """6.1 总连接数 60 (20用户 x 3), 8 并发连接: all at once, each gets its pushes."""
    users = await asyncio.gather(*(node.user(http) for _ in range(20)))
    socks = await asyncio.gather(*(online(http, node, u) for u in users for _ in range(3)))
    sender = await online(http, node, await node.user(http))
    for user in users:
        await chat(sender, user.id, f"to {user.id}")

    async def pushed(sock: SeedSocket) -> int:
        _, push = await sock.expect(MsgChatPush)
        return int(push["to"])

    got = await asyncio.gather(*(pushed(sock) for sock in socks))
    assert sorted(got) == sorted(u.id for u in users for _ in range(3))
    await asyncio.gather(*(sock.close() for sock in [*socks, sender]))


async def test_a_message_over_one_megabyte_is_refused(http, node) -> None:
    alice, bob = await node.user(http), await node.user(http)
    sock = await online(http, node, alice)
    await chat(sock, bob.id, "x" * 900_000)  # under 1 MB: fine
    await sock.send(MsgChat, {"to": bob.id, "type": "text", "content": "x" * (1 << 20)})
    assert await sock.close_code() == 1009


async def test_a_foreign_origin_is_refused(http, node) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(node.ws_url, headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403


async def test_rate_limited(http, node, request, tmp_path: Path) -> None:
    with running_node(request, node.store, tmp_path, rate_limit=1, rate_burst=3) as slow:
        sock = await online(http, slow, await slow.user(http))
        for _ in range(10):
            await sock.send(MsgPing, None)
        _, err = await sock.expect(MsgError)
        assert err["code"] == "WS_RATE_LIMITED"
        await sock.close()


async def test_a_silent_connection_is_closed(http, node, request, tmp_path: Path) -> None:
    with running_node(request, node.store, tmp_path, idle_timeout=1) as short:
        quiet = await online(http, short, await short.user(http))
        assert await quiet.close_code() == 4410  # 3.4: 超时断开


async def test_shutdown_says_goodbye(http, node, request, tmp_path: Path) -> None:
    with running_node(request, node.store, tmp_path) as leaving:
        alive = await online(http, leaving, await leaving.user(http))
        # 6.2 优雅关闭: SIGTERM; read the goodbye while the process drains and exits
        stopping = asyncio.create_task(asyncio.to_thread(leaving.process.stop))
        assert await alive.close_code() == 1001
        await stopping


def test_defaults_are_the_seeds_limits() -> None:
    """6.1 and 7, and the seed's URL ws://localhost:8443/ws."""
    out = subprocess.run([TIDINGS, "serve", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    options = " ".join(out.split("options:", 1)[1].split())
    for flag, default in [("--port", "8443"), ("--max-connections-per-user", "3"),
                          ("--send-queue-size", "100"), ("--idle-timeout", "60.0"),
                          ("--write-timeout", "10.0"), ("--max-frame-bytes", "1048576")]:
        found = re.search(re.escape(flag) + r" \w+ [^\[]*\[env \w+; default: ([^\]]+)\]",
                          options)
        assert found is not None and found.group(1) == default, (flag, found)
