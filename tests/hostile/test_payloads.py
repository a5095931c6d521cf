"""Hostile application payloads on an authenticated connection: malformed MessagePack
and JSON, wrong types in every field, numbers out of range, deep nesting, length lies,
huge strings, SQL-looking and NUL strings.

docs/protocol.md, errors: a malformed or refused frame gets a MsgError and the
connection stays — WS_INVALID_MESSAGE (seq 0) when the envelope cannot be decoded,
WS_INVALID_PAYLOAD (the request's seq) when the payload does not validate,
WS_UNKNOWN_TYPE for a type code a client may not send.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import msgspec
import pytest

from tests.hostile.helpers import (
    assert_bystander_chats,
    authed,
    history,
    reply_to,
    rss_bytes,
    still_answers,
)
from tests.support.wire import Closed, Wire
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType

P = msgspec.msgpack.encode
INVALID_MESSAGE, INVALID_PAYLOAD = ErrorCode.INVALID_MESSAGE, ErrorCode.INVALID_PAYLOAD
UNKNOWN_TYPE = ErrorCode.UNKNOWN_TYPE


def env(type_: Any, seq: Any = 7, payload: Any = None) -> bytes:
    """A binary envelope; ``payload`` is MessagePack-encoded unless it is already bytes."""
    body: dict[str, Any] = {"type": type_, "seq": seq}
    if payload is not None:
        body["payload"] = payload if isinstance(payload, bytes) else P(payload)
    return P(body)


def f32(x: float) -> bytes:
    return b"\xca" + struct.pack("!f", x)


PING_MAP = b"\xa4type\x06\xa3seq\x07"  # the two entries of {"type": 6, "seq": 7}

# (name, frame, expected seq, expected code): every one leaves the connection open.
ENVELOPE_FAMILIES: dict[str, list[tuple[str, bytes | str, int, str]]] = {
    "truncated-empty-trailing": [
        ("truncated map", b"\x83\xa4typ", 0, INVALID_MESSAGE),
        ("truncated after a key", b"\x82\xa4type", 0, INVALID_MESSAGE),
        ("empty frame", b"", 0, INVALID_MESSAGE),
        ("trailing bytes", env(6) + b"\x00", 0, INVALID_MESSAGE),
        ("two envelopes in one frame", env(6) + env(6), 0, INVALID_MESSAGE),
    ],
    "extension-types": [
        ("fixext as the envelope", b"\xd4\x01\x00", 0, INVALID_MESSAGE),
        ("ext as seq", b"\x82\xa4type\x06\xa3seq\xd4\x01\x00", 0, INVALID_MESSAGE),
        ("timestamp ext (-1) as seq",
         b"\x82\xa4type\x06\xa3seq\xd6\xff\x00\x00\x00\x01", 0, INVALID_MESSAGE),
        ("ext8 as type", b"\x82\xa4type\xc7\x01\x05\x00\xa3seq\x07", 0, INVALID_MESSAGE),
        ("ext as payload", b"\x83" + PING_MAP[:-4] + b"\xa3seq\x07\xa7payload\xd4\x01\x00",
         0, INVALID_MESSAGE),
        ("ext as a payload field", env(2, 7, b"\x83\xa2to\xd4\x01\x00\xa4type\xa4text"
                                               b"\xa7content\xa1x"), 7, INVALID_PAYLOAD),
    ],
    "non-string-keys": [
        ("int key", b"\x83\x01\x02" + PING_MAP, 0, INVALID_MESSAGE),
        ("bin key", b"\x83\xc4\x01k\x02" + PING_MAP, 0, INVALID_MESSAGE),
        ("nil key", b"\x83\xc0\x02" + PING_MAP, 0, INVALID_MESSAGE),
        ("map as key", b"\x83\x80\x02" + PING_MAP, 0, INVALID_MESSAGE),
        ("int key in payload", env(5, 7, {1: "away"}), 7, INVALID_PAYLOAD),
    ],
    "float-bool-nil-codes": [
        ("float64 type 6.0", env(6.0), 0, INVALID_MESSAGE),
        ("float32 type 6.0", b"\x82\xa4type" + f32(6.0) + b"\xa3seq\x07", 0, INVALID_MESSAGE),
        ("bool type true (not 1)", env(True), 0, INVALID_MESSAGE),
        ("nil type", env(None), 0, INVALID_MESSAGE),
        ("string type", env("6"), 0, INVALID_MESSAGE),
        ("float seq", env(6, 7.0), 0, INVALID_MESSAGE),
        ("bool seq", env(6, True), 0, INVALID_MESSAGE),
        ("NaN seq", env(6, float("nan")), 0, INVALID_MESSAGE),
        ("missing type", P({"seq": 7}), 0, INVALID_MESSAGE),
    ],
    "integers-out-of-range": [
        ("type -1", env(-1), 0, INVALID_MESSAGE),
        ("type 32768", env(32768), 0, INVALID_MESSAGE),
        ("type -2**63", env(-(2**63)), 0, INVALID_MESSAGE),
        ("seq 2**63", env(6, 2**63), 0, INVALID_MESSAGE),
        ("seq 2**64-1", env(6, 2**64 - 1), 0, INVALID_MESSAGE),
        ("seq -1", env(6, -1), 0, INVALID_MESSAGE),
        ("to 2**64-1", env(2, 7, {"to": 2**64 - 1, "type": "text", "content": "x"}), 7,
         INVALID_PAYLOAD),
    ],
    "payload-not-bin": [
        ("payload str", P({"type": 2, "seq": 7, "payload": "abc"}), 0, INVALID_MESSAGE),
        ("payload inline map", P({"type": 2, "seq": 7, "payload": {"to": 1}}), 0,
         INVALID_MESSAGE),
        ("payload int", P({"type": 2, "seq": 7, "payload": 1}), 0, INVALID_MESSAGE),
        ("payload bin holding an array", env(2, 7, [1, 2]), 7, INVALID_PAYLOAD),
        ("payload bin holding a string", env(2, 7, "x"), 7, INVALID_PAYLOAD),
        ("payload bin not msgpack", env(2, 7, b"\xc1"), 7, INVALID_PAYLOAD),
        ("payload bin with trailing bytes", env(5, 7, P({"status": "away"}) + b"\x00"), 7,
         INVALID_PAYLOAD),
    ],
    "json-non-standard-numbers": [
        ("NaN", '{"type":6,"seq":NaN}', 0, INVALID_MESSAGE),
        ("Infinity", '{"type":6,"seq":Infinity}', 0, INVALID_MESSAGE),
        ("-Infinity", '{"type":6,"seq":-Infinity}', 0, INVALID_MESSAGE),
        ("1e400", '{"type":6,"seq":1e400}', 0, INVALID_MESSAGE),
        ("6.0 type", '{"type":6.0,"seq":7}', 0, INVALID_MESSAGE),
        ("true type", '{"type":true,"seq":7}', 0, INVALID_MESSAGE),
        ("20-digit seq", '{"type":6,"seq":99999999999999999999}', 0, INVALID_MESSAGE),
        ("5000-digit seq", '{"type":6,"seq":' + "9" * 5000 + "}", 0, INVALID_MESSAGE),
        ("5000-digit to", '{"type":2,"seq":7,"payload":{"to":' + "9" * 5000
         + ',"type":"text","content":"x"}}', 7, INVALID_PAYLOAD),
        ("hex", '{"type":0x6,"seq":7}', 0, INVALID_MESSAGE),
    ],
    "json-non-object-envelopes": [
        ("array", "[]", 0, INVALID_MESSAGE),
        ("array of envelope", '[{"type":6,"seq":7}]', 0, INVALID_MESSAGE),
        ("string", '"x"', 0, INVALID_MESSAGE),
        ("null", "null", 0, INVALID_MESSAGE),
        ("number", "1", 0, INVALID_MESSAGE),
        ("true", "true", 0, INVALID_MESSAGE),
        ("empty text frame", "", 0, INVALID_MESSAGE),
        ("UTF-8 BOM before the object", '\ufeff{"type":6,"seq":7}', 0, INVALID_MESSAGE),
        ("two objects", '{"type":6,"seq":7}{"type":6,"seq":8}', 0, INVALID_MESSAGE),
        ("payload string", '{"type":2,"seq":7,"payload":"x"}', 7, INVALID_PAYLOAD),
        ("payload array", '{"type":2,"seq":7,"payload":[1]}', 7, INVALID_PAYLOAD),
        ("payload null", '{"type":2,"seq":7,"payload":null}', 7, INVALID_PAYLOAD),
    ],
}


async def _assert_answers(wire: Wire, cases: list[tuple[str, bytes | str, int, str]]) -> None:
    for name, frame, seq, code in cases:
        if isinstance(frame, str):
            await wire.ws.send_str(frame)
        else:
            await wire.ws.send_bytes(frame)
        t, got_seq, payload = await reply_to(wire)
        assert (t, got_seq, payload.get("code")) == (MsgType.ERROR, seq, code), (name, payload)
    await still_answers(wire)


@pytest.mark.parametrize("family", list(ENVELOPE_FAMILIES))
async def test_malformed_frames_get_a_coded_error_and_the_connection_stays(server, http,
                                                                            family):
    cases = ENVELOPE_FAMILIES[family]
    wire = await authed(server, http, binary=not isinstance(cases[0][1], str))
    await _assert_answers(wire, cases)
    await wire.close()
    await assert_bystander_chats(server, http)


async def test_length_lies_are_refused_at_once_without_allocation(server_factory, http):
    """MessagePack headers claiming 4 G elements or bytes, with no data behind them."""
    # 100 of the 300 lies have a valid envelope, so each takes a rate-limit token: with the
    # default burst (100) the closing ping was refused whenever the 300 answers came back
    # within the 40 ms the bucket takes to refill two tokens.
    server = await server_factory(rate_burst=1000)
    wire = await authed(server, http)
    before, started = rss_bytes(), time.monotonic()
    lies = (
        ("array32", b"\xdd\xff\xff\xff\xff", 0, INVALID_MESSAGE),
        ("map32", b"\xdf\xff\xff\xff\xff", 0, INVALID_MESSAGE),
        ("str32", b"\xdb\xff\xff\xff\xff", 0, INVALID_MESSAGE),
        ("bin32 payload", b"\x83" + PING_MAP + b"\xa7payload\xc6\xff\xff\xff\xff", 0,
         INVALID_MESSAGE),
        ("array32 inside the payload", env(2, 7, b"\xdd\xff\xff\xff\xff"), 7, INVALID_PAYLOAD),
        ("str32 content", env(2, 7, b"\x83\xa2to\x01\xa4type\xa4text\xa7content"
                                    b"\xdb\xff\xff\xff\xff"), 7, INVALID_PAYLOAD),
    )
    cases = [(f"{name} claim x{i}", frame, seq, code)
             for i in range(50) for name, frame, seq, code in lies]
    await _assert_answers(wire, cases)
    assert time.monotonic() - started < 3
    assert rss_bytes() - before < 4 << 20
    await wire.close()
    await assert_bystander_chats(server, http)


async def test_type_codes_a_client_may_not_send_are_unknown_type(server, http):
    """0, 7, 100, the server's own 101-108 and 32767: WS_UNKNOWN_TYPE with the seq."""
    wire = await authed(server, http)
    cases = [(f"type {t}", env(t, 40 + i), 40 + i, UNKNOWN_TYPE)
             for i, t in enumerate([0, 7, 100, *range(101, 109), 32767])]
    await _assert_answers(wire, cases)
    await wire.close()
    await assert_bystander_chats(server, http)


def _wrong_fields(recipient: int) -> list[tuple[str, int, dict[str, Any] | None, bool]]:
    """(name, type, payload, JSON-representable) for each client payload: wrong types,
    out-of-range values, unknown enum values, missing required fields."""
    chat = {"to": recipient, "type": "text", "content": "x"}
    out: list[tuple[str, int, dict[str, Any] | None, bool]] = []
    for field, values in {
        "to": ["1", 0, -1, 1.0, True, None, 2**63, [1]],
        "type": [1, "TEXT", "", None, ["text"]],
        "content": [1, None, ["x"], {"a": 1}, True],
    }.items():
        out += [(f"chat {field}={v!r}", MsgType.CHAT, {**chat, field: v}, True) for v in values]
        out.append((f"chat without {field}", MsgType.CHAT,
                    {k: v for k, v in chat.items() if k != field}, True))
    out.append(("chat content as bin", MsgType.CHAT, {**chat, "content": b"x"}, False))
    out.append(("chat with no payload", MsgType.CHAT, None, True))
    ack = {"message_id": 1, "status": "delivered"}
    for field, values in {"message_id": ["1", 0, -1, 1.5, True, None, 2**63],
                          "status": ["sent", "READ", 1, None, ""]}.items():
        out += [(f"ack {field}={v!r}", MsgType.ACK, {**ack, field: v}, True) for v in values]
        out.append((f"ack without {field}", MsgType.ACK,
                    {k: v for k, v in ack.items() if k != field}, True))
    for field, values in {"last_message_id": [-1, "0", 1.5, True, 2**63, None],
                          "last_sync_time": [-1, "x", 1.5]}.items():
        out += [(f"sync {field}={v!r}", MsgType.SYNC_REQ, {field: v}, True) for v in values]
    out += [(f"presence status={v!r}", MsgType.PRESENCE, {"status": v}, True)
            for v in ("busy", "", "ONLINE", 1, None, ["online"], "online\x00")]
    out.append(("presence without status", MsgType.PRESENCE, {}, True))
    return out


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_wrong_field_types_in_every_client_payload_are_invalid_payload(server, http,
                                                                             binary):
    recipient, _ = await server.quick_user()
    wire = await authed(server, http, binary=binary)
    for i, (name, type_, payload, in_json) in enumerate(_wrong_fields(recipient)):
        if not binary and not in_json:
            continue
        seq = await wire.send(type_, payload, seq=100 + i)
        t, got, answer = await reply_to(wire)
        assert (t, got, answer.get("code")) == (MsgType.ERROR, seq, INVALID_PAYLOAD), (name,
                                                                                        answer)
    ack = await wire.chat(recipient, "valid after all that")
    assert ack["message_id"] >= 1
    await wire.close()
    await assert_bystander_chats(server, http)


async def test_invalid_utf8_in_a_msgpack_payload_string_is_invalid_payload(server, http):
    recipient, _ = await server.quick_user()
    wire = await authed(server, http)
    bad = b"\xa2\xff\xfe"  # a 2-byte str that is not UTF-8
    cases = [
        ("content", env(2, 7, b"\x83\xa2to" + P(recipient) + b"\xa4type\xa4text\xa7content"
                        + bad), 7, INVALID_PAYLOAD),
        ("presence status", env(5, 8, b"\x81\xa6status" + bad), 8, INVALID_PAYLOAD),
    ]
    await _assert_answers(wire, cases)
    await wire.close()
    await assert_bystander_chats(server, http)


async def test_duplicate_keys_last_one_wins_in_both_framings(server, http):
    """Not in the docs; pinned here so a change is noticed: like JSON.parse, the last of
    duplicate keys wins, in the envelope and in the payload, in JSON and MessagePack."""
    recipient, _ = await server.quick_user()
    _, token = await server.quick_user()
    text = await authed(server, http, token, binary=False, device_id="json")
    await text.ws.send_str('{"type":2,"type":6,"seq":7,"seq":9}')
    assert (await reply_to(text))[:2] == (MsgType.PONG, 9)
    await text.ws.send_str(f'{{"type":2,"seq":11,"payload":{{"to":{recipient},"type":"text",'
                           '"content":"first","content":"last"}}')
    t, seq, _ = await reply_to(text)
    assert (t, seq) == (MsgType.CHAT_ACK, 11)
    binary = await authed(server, http, token, device_id="msgpack")
    await binary.ws.send_bytes(b"\x84\xa4type\x02\xa4type\x06\xa3seq\x07\xa3seq\x0c")
    assert (await reply_to(binary))[:2] == (MsgType.PONG, 12)
    assert [m["content"] for m in await history(server, http, token, recipient)] == ["last"]
    await text.close()
    await binary.close()
    await assert_bystander_chats(server, http)


async def test_deep_nesting_is_refused_or_ignored_and_the_loop_survives(server, http):
    """Nesting past msgspec's depth limit is an error; shallow nesting in an unknown field
    is ignored (docs: unknown fields are ignored) and the chat is stored."""
    recipient, _ = await server.quick_user()
    wire = await authed(server, http)
    chat = b"\x84\xa2to" + P(recipient) + b"\xa4type\xa4text\xa7content\xa1x\xa1z"
    await _assert_answers(wire, [
        ("2 000 nested arrays as the payload", env(2, 7, b"\x91" * 2000 + b"\x01"), 7,
         INVALID_PAYLOAD),
        ("2 000 nested arrays in an unknown field", env(2, 8, chat + b"\x91" * 2000 + b"\x01"),
         8, INVALID_PAYLOAD),
        ("100 000 nested maps as the envelope", b"\x81\xa1a" * 100_000 + b"\x01", 0,
         INVALID_MESSAGE),
    ])
    await wire.ws.send_bytes(env(2, 9, chat + b"\x91" * 100 + b"\x01"))
    t, seq, _ = await reply_to(wire)
    assert (t, seq) == (MsgType.CHAT_ACK, 9)
    text = await authed(server, http, binary=False)
    await _assert_answers(text, [
        ("1 000-deep array in a payload field", f'{{"type":2,"seq":7,"payload":{{"to":{recipient},'
         f'"type":"text","content":"x","z":{"[" * 1000}1{"]" * 1000}}}}}', 0, INVALID_MESSAGE),
        ("100 000-deep array envelope", "[" * 100_000 + "]" * 100_000, 0, INVALID_MESSAGE),
        ("100 000-deep object envelope", '{"a":' * 100_000 + "1" + "}" * 100_000, 0,
         INVALID_MESSAGE),
        ("lone surrogate escape", f'{{"type":2,"seq":7,"payload":{{"to":{recipient},'
         '"type":"text","content":"\\ud800"}}', 0, INVALID_MESSAGE),
    ])
    await wire.close()
    await text.close()
    await assert_bystander_chats(server, http)


def _frame_of_size(binary: bool, recipient: int, size: int, unit: str) -> tuple[bytes | str, str]:
    """A MsgChat frame of exactly ``size`` bytes on the wire, and its content."""
    def frame(n: int) -> bytes:
        payload = {"to": recipient, "type": "text", "content": unit * n}
        if binary:
            return env(2, 5, payload)
        return msgspec.json.encode({"type": 2, "seq": 5, "payload": payload})
    n = (size - len(frame(0))) // len(unit.encode())
    while len(frame(n)) > size:
        n -= 1
    pad = size - len(frame(n))
    content = unit * n + "a" * pad
    data = frame(0).replace(b'""', b'"' + content.encode() + b'"') if not binary else b""
    if binary:
        payload = {"to": recipient, "type": "text", "content": content}
        data = env(2, 5, payload)
    assert len(data) == size, (len(data), size)
    return (data if binary else data.decode()), content


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_content_just_under_the_frame_limit_round_trips_and_just_over_closes_1009(
        server, http, binary):
    recipient, r_token = await server.quick_user()
    _, token = await server.quick_user()
    receiver = await authed(server, http, r_token, binary=binary)
    wire = await authed(server, http, token, binary=binary)
    limit = server.node.settings.max_frame_bytes
    data, content = _frame_of_size(binary, recipient, limit - 1, "é")
    if binary:
        await wire.ws.send_bytes(data)
    else:
        await wire.ws.send_str(data)
    t, seq, ack = await reply_to(wire, timeout=10)
    assert (t, seq) == (MsgType.CHAT_ACK, 5), ack
    _, push = await receiver.expect(MsgType.CHAT_PUSH, timeout=10)
    assert push["content"] == content
    assert [m["content"] for m in await history(server, http, token, recipient)] == [content]
    over, _ = _frame_of_size(binary, recipient, limit + 1, "é")
    if binary:
        await wire.ws.send_bytes(over)
    else:
        await wire.ws.send_str(over)
    assert await wire.closed_with() == CloseCode.MESSAGE_TOO_BIG
    await receiver.close()
    await assert_bystander_chats(server, http)


async def test_a_message_of_exactly_max_frame_bytes_is_accepted(server_factory, http):
    """The limit is inclusive (docs: close 1009 *above* max_frame_bytes). aiohttp's own
    limit is exclusive; found off by one here, fixed in de3bb0c (max_frame_bytes + 1)."""
    server = await server_factory(max_frame_bytes=4096)
    recipient, _ = await server.quick_user()
    wire = await authed(server, http)
    data, _ = _frame_of_size(True, recipient, 4096, "x")
    await wire.ws.send_bytes(data)
    try:
        t, seq, _ = await reply_to(wire)
    except Closed as exc:
        raise AssertionError(f"closed with {exc.code}") from None
    assert (t, seq) == (MsgType.CHAT_ACK, 5)
    await assert_bystander_chats(server, http)


SQL_LOOKING = [
    "'; DROP TABLE messages;--",
    "' OR '1'='1",
    "1; DELETE FROM users WHERE 1=1; --",
    "\"); DROP TABLE tokens; --",
    "%", "_", "%_%", "\\", "\\'", "$1", "?", ":name", "@p0",
    "'" * 10_000,
    "robert'); UPDATE messages SET content='pwned' WHERE ('1'='1",
    "\U0001d57f\U0001d58e\U0001d589 \u2603 \u202e\u200b",  # fraktur, snowman, RLO, ZWSP
]


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
async def test_sql_looking_strings_are_stored_and_read_back_verbatim(server, http, binary):
    recipient, r_token = await server.quick_user()
    sender, token = await server.quick_user()
    device = "dev'; DROP TABLE device_cursors;--"
    wire = await authed(server, http, token, binary=binary)
    receiver = await authed(server, http, r_token, binary=binary, device_id=device)
    assert receiver.device_id == device
    for content in SQL_LOOKING:
        await wire.chat(recipient, content)
    pushed = []
    while len(pushed) < len(SQL_LOOKING):
        pushed.append((await receiver.expect(MsgType.CHAT_PUSH))[1]["content"])
    assert pushed == SQL_LOOKING
    assert [m["content"] for m in await history(server, http, r_token, sender)] == SQL_LOOKING
    await receiver.close()
    # The SQL-looking device id names a cursor like any other: nothing was acked, so the
    # backlog is everything; after an ack of the last id it is nothing.
    again = await authed(server, http, r_token, binary=binary, device_id=device)
    assert [m["content"] for m in again.replayed] == SQL_LOOKING
    await again.send(MsgType.ACK, {"message_id": again.replayed[-1]["message_id"],
                                   "status": "delivered"})
    await still_answers(again)
    await again.close()
    async with asyncio.timeout(5):
        while await server.node.store.get_cursor(recipient, device) == 0:
            await asyncio.sleep(0.02)
    last = await authed(server, http, r_token, binary=binary, device_id=device)
    assert last.replayed == []
    assert await server.node.store.get_user(sender) is not None
    await last.close()
    await wire.close()
    await assert_bystander_chats(server, http)


async def test_nul_in_chat_content_never_fails_another_users_chat(server_factory, http,
                                                                   request, store_url):
    """A chat with U+0000 is stored verbatim (or refused as WS_INVALID_PAYLOAD), and the
    chats of another user committed at the same time are all stored."""
    server = await server_factory(rate_limit=10_000, rate_burst=10_000)
    a_id, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    attacker = await authed(server, http, a_token)
    bystander = await authed(server, http, b_token)
    for i in range(100):  # pipelined: group commit batches them with the attacker's chats
        await bystander.send(MsgType.CHAT, {"to": a_id, "type": "text", "content": f"b{i}"},
                             seq=1000 + i)
        if i % 5 == 2:
            await attacker.send(MsgType.CHAT, {"to": b_id, "type": "text",
                                               "content": f"nul\x00{i}"}, seq=2000 + i)
    answers: dict[int, str] = {}
    while len(answers) < 100:
        t, seq, payload = await reply_to(bystander)
        answers[seq] = "ack" if t == MsgType.CHAT_ACK else payload.get("code", str(t))
    refused = sorted(seq for seq, answer in answers.items() if answer != "ack")
    assert not refused, f"{len(refused)} of the bystander's 100 chats refused: " \
                        f"{answers[refused[0]]}"
    for _ in range(20):
        t, seq, payload = await reply_to(attacker)
        if t == MsgType.ERROR:
            assert payload["code"] == INVALID_PAYLOAD, payload
    stored = [m["content"] for m in await history(server, http, a_token, b_id)]
    assert [c for c in stored if c.startswith("b")] == [f"b{i}" for i in range(100)]
    assert all(c == f"nul\x00{c[4:]}" for c in stored if c.startswith("nul"))
    await attacker.close()
    await bystander.close()
    await assert_bystander_chats(server, http)
