"""RFC 6455 framing violations no client library sends, written by hand on a raw
socket after a real upgrade and MsgAuth. Each must close the connection with the
RFC 6455 §7.4.1 code (docs/protocol.md, close codes: 1002 / 1007 / 1009), close the
TCP connection, release the connection's slot, and leave a bystander chatting."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.hostile.helpers import assert_bystander_chats, eventually, health_connections
from tests.hostile.rawws import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawSocket,
    build_frame,
    close_payload,
)
from tidings.protocol.codec import decode_server_frame, encode_client_frame
from tidings.protocol.codes import MsgType

PROTOCOL_ERROR, INVALID_TEXT, TOO_BIG = 1002, 1007, 1009
PING_FRAME = encode_client_frame(MsgType.PING, 7, None, binary=True)
assert isinstance(PING_FRAME, bytes)
BAD_UTF8 = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"  # ends in a lone surrogate


VIOLATIONS = [
    pytest.param([build_frame(OP_BINARY, PING_FRAME, rsv=0b100)], PROTOCOL_ERROR,
                 id="rsv1-without-negotiated-deflate"),
    pytest.param([build_frame(OP_BINARY, PING_FRAME, rsv=0b011)], PROTOCOL_ERROR,
                 id="rsv2-rsv3"),
    pytest.param([build_frame(0x3, b"x")], PROTOCOL_ERROR, id="reserved-data-opcode-3"),
    pytest.param([build_frame(0xB, b"x")], PROTOCOL_ERROR, id="reserved-control-opcode-B"),
    pytest.param([build_frame(OP_BINARY, PING_FRAME, mask=False)], PROTOCOL_ERROR,
                 id="unmasked-client-frame"),  # RFC 6455 §5.1; tidings.gateway.masking
    pytest.param([build_frame(OP_BINARY, PING_FRAME),
                  build_frame(OP_PING, b"x", mask=False)], PROTOCOL_ERROR,
                 id="unmasked-frame-after-a-masked-one"),
    pytest.param([build_frame(OP_PING, b"x", fin=False)], PROTOCOL_ERROR,
                 id="fragmented-ping"),
    pytest.param([build_frame(OP_PING, b"x" * 126)], PROTOCOL_ERROR,
                 id="control-frame-126-bytes"),
    pytest.param([build_frame(OP_TEXT, BAD_UTF8)], INVALID_TEXT, id="invalid-utf8-text"),
    pytest.param([build_frame(OP_TEXT, b'{"type":6,"seq":1,"x":"\xce', fin=False),
                  build_frame(OP_CONT, b'\xff"}')], INVALID_TEXT,
                 id="invalid-utf8-split-across-fragments"),
    pytest.param([build_frame(OP_BINARY, length=1 << 62)], TOO_BIG,
                 id="64-bit-length-2**62-header-only"),
    pytest.param([build_frame(OP_BINARY, length=2 << 20)], TOO_BIG,
                 id="2-MiB-length-header-only"),
    pytest.param([build_frame(OP_BINARY, length=(1 << 63) + 1)], TOO_BIG,
                 id="64-bit-length-with-msb-set"),
    pytest.param([build_frame(OP_CONT, PING_FRAME)], PROTOCOL_ERROR,
                 id="continuation-without-start"),
    pytest.param([build_frame(OP_TEXT, b"{", fin=False), build_frame(OP_TEXT, b"}")],
                 PROTOCOL_ERROR, id="new-data-frame-inside-fragmented-message"),
    pytest.param([build_frame(OP_CLOSE, b"\x03")], PROTOCOL_ERROR, id="close-1-byte-payload"),
    pytest.param([build_frame(OP_CLOSE, close_payload(1000, b"\xff\xfe"))], INVALID_TEXT,
                 id="close-reason-not-utf8"),
    *[pytest.param([build_frame(OP_CLOSE, close_payload(code))], PROTOCOL_ERROR,
                   id=f"close-code-{code}") for code in (0, 999, 1004, 1005, 1015, 1016, 2999)],
    *[pytest.param([build_frame(OP_CLOSE, close_payload(code))], PROTOCOL_ERROR,
                   id=f"close-code-{code}") for code in (1006, 5000, 65535)],
]


async def _send_all(raw: RawSocket, frames: list[bytes]) -> None:
    for frame in frames:
        try:
            await raw.send(frame)
        except (ConnectionError, OSError):
            return  # the server may close before it has read everything


@pytest.mark.parametrize("frames, code", VIOLATIONS)
async def test_protocol_violation_closes_with_the_rfc_code(server, http, frames, code):
    user_id, token = await server.quick_user()
    raw = await RawSocket.upgrade(server)
    try:
        await raw.auth(token)
        assert server.node.hub.count(user_id) == 1
        await _send_all(raw, frames)
        assert await raw.close_code(1.0) == code
        assert await raw.eof(2), "the server must close TCP after its close frame"
    finally:
        await raw.aclose()
    await eventually(lambda: server.node.hub.count(user_id) == 0, 3, "connection released")
    await assert_bystander_chats(server, http)


async def test_fragment_flood_is_cut_at_the_size_limit_without_cpu_burn(server, http):
    """20 000 continuation frames of 64 bytes (1.25 MiB): closed 1009 once the reassembled
    size passes max_frame_bytes, in well under a second of CPU."""
    _, token = await server.quick_user()
    flood = build_frame(OP_BINARY, b"a" * 64, fin=False) + b"".join(
        build_frame(OP_CONT, b"a" * 64, fin=False) for _ in range(20_000))
    raw = await RawSocket.upgrade(server)
    try:
        await raw.auth(token)
        cpu = time.process_time()
        await _send_all(raw, [flood])
        assert await raw.close_code(5) == TOO_BIG
        assert time.process_time() - cpu < 1.0
    finally:
        await raw.aclose()
    await assert_bystander_chats(server, http)


async def test_control_frames_inside_a_fragmented_message_are_served(server, http):
    """RFC 6455 §5.4: a ping between fragments gets its pong with the same payload, and the
    message still assembles (a MsgPing sent in three pieces gets its MsgPong)."""
    _, token = await server.quick_user()
    raw = await RawSocket.upgrade(server)
    try:
        await raw.auth(token)
        await raw.send_frame(OP_TEXT, b'{"type":6,', fin=False)
        await raw.send_frame(OP_PING, b"between")
        await raw.send_frame(OP_PONG, b"unsolicited")  # ignored, RFC 6455 §5.5.3
        await raw.send_frame(OP_CONT, b'"seq":5}')
        pongs, replies = [], []
        async with asyncio.timeout(5):
            while not (pongs and replies):
                _, opcode, payload = await raw.read_frame()
                if opcode == OP_PONG:
                    pongs.append(payload)
                elif opcode == OP_BINARY and decode_server_frame(payload)[0] == MsgType.PONG:
                    replies.append(decode_server_frame(payload)[:2])
        assert pongs == [b"between"] and replies == [(MsgType.PONG, 5)]
    finally:
        await raw.aclose()
    await assert_bystander_chats(server, http)


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_valid_close_is_answered_and_released(server, http, code):
    """A valid close code (5000 and up are protocol errors, above) is answered 1000; the
    connection is closed and released."""
    user_id, token = await server.quick_user()
    raw = await RawSocket.upgrade(server)
    try:
        await raw.auth(token)
        await raw.send_frame(OP_CLOSE, close_payload(code, "bye ✓".encode()))
        assert await raw.close_code(3) == 1000
        assert await raw.eof(3)
    finally:
        await raw.aclose()
    await eventually(lambda: server.node.hub.count(user_id) == 0, 3, "connection released")
    await assert_bystander_chats(server, http)


@pytest.mark.parametrize("how", ["rst", "fin"])
async def test_connection_dropped_mid_frame_is_cleaned_up(server, http, how):
    """RST (SO_LINGER 0) or FIN in the middle of a frame, no close frame: the connection
    is unregistered and its user goes offline for their peer within 2 s."""
    user_id, token = await server.quick_user()
    _, peer_token = await server.quick_user()
    peer = await RawSocket.upgrade(server)
    raw = await RawSocket.upgrade(server)
    try:
        await peer.auth(peer_token)
        await raw.auth(token)
        await peer.send_msg(MsgType.CHAT, {"to": user_id, "type": "text", "content": "hi"})
        await peer.expect(MsgType.CHAT_ACK)  # now peers: presence is shared
        baseline = await health_connections(server, http)
        half = build_frame(OP_BINARY, b"x" * 1000)[:500]
        await raw.send(half)
        if how == "rst":
            raw.abort()
        else:
            raw.writer.write_eof()
        await eventually(lambda: server.node.hub.count(user_id) == 0, 2, "unregistered")
        async with asyncio.timeout(2):
            while True:
                _, push = await peer.expect(MsgType.PRESENCE_PUSH)
                if push == {"user_id": user_id, "status": "offline"}:
                    break
        assert await health_connections(server, http) == baseline - 1
    finally:
        await raw.aclose()
        await peer.aclose()
    await assert_bystander_chats(server, http)
