"""Envelope and payload codec, bytes in and bytes out, in both framings."""

from __future__ import annotations

import json

import msgspec
import pytest

from tidings.protocol.codec import (
    Frame,
    ProtocolError,
    decode_frame,
    decode_payload,
    decode_server_frame,
    encode_client_frame,
    encode_frame,
)
from tidings.protocol.codes import ErrorCode, MsgType
from tidings.protocol.messages import (
    AckPayload,
    AuthPayload,
    ChatPayload,
    ErrorPayload,
    Message,
    PresencePayload,
    SyncRequestPayload,
)

mp = msgspec.msgpack.encode

CLIENT_PAYLOADS = [
    (MsgType.AUTH, AuthPayload(token="tdg_x", device_id="phone")),
    (MsgType.CHAT, ChatPayload(to=2, type="text", content="héllo 🙂")),
    (MsgType.ACK, AckPayload(message_id=9, status="read")),
    (MsgType.SYNC_REQ, SyncRequestPayload(last_message_id=41)),
    (MsgType.PRESENCE, PresencePayload(status="away")),
]


def binary_frame(payload: bytes, type_: int = MsgType.CHAT, seq: int = 3) -> Frame:
    return Frame(type_, seq, payload, binary=True)


def text_frame(payload: bytes, type_: int = MsgType.CHAT, seq: int = 3) -> Frame:
    return Frame(type_, seq, payload, binary=False)


# round trips


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "text"])
@pytest.mark.parametrize("type_,payload", CLIENT_PAYLOADS,
                         ids=[t.name for t, _ in CLIENT_PAYLOADS])
def test_client_frames_round_trip_in_both_framings(binary, type_, payload):
    data = encode_client_frame(type_, 17, payload, binary=binary)
    assert isinstance(data, bytes if binary else str)
    frame = decode_frame(data)
    assert (frame.type, frame.seq, frame.binary) == (type_, 17, binary)
    assert decode_payload(frame) == payload


def test_binary_envelope_is_a_msgpack_map_with_msgpack_payload_bytes():
    payload = ChatPayload(to=2, type="text", content="hi")
    data = encode_frame(MsgType.CHAT, 5, payload, binary=True)
    assert data == mp({"type": 2, "seq": 5, "payload": mp({"to": 2, "type": "text",
                                                           "content": "hi"})})


def test_text_envelope_is_json_with_an_inline_payload_object():
    data = encode_frame(MsgType.CHAT, 5, ChatPayload(to=2, type="text", content="hi"),
                        binary=False)
    assert data == b'{"type":2,"seq":5,"payload":{"to":2,"type":"text","content":"hi"}}'


@pytest.mark.parametrize("binary,expected", [
    (True, mp({"type": 6, "seq": 1, "payload": b""})),
    (False, b'{"type":6,"seq":1,"payload":{}}'),
], ids=["binary", "text"])
def test_no_payload_is_encoded_as_empty(binary, expected):
    assert encode_frame(MsgType.PING, 1, None, binary=binary) == expected
    frame = decode_frame(expected if binary else expected.decode())
    assert decode_payload(frame) is None  # MsgPing has no payload


def test_envelope_fields_default_when_absent():
    assert decode_frame(mp({"type": 6})) == Frame(6, 0, b"", binary=True)
    assert decode_frame(mp({"type": 6, "payload": None})) == Frame(6, 0, b"", binary=True)
    assert decode_frame('{"type": 6}') == Frame(6, 0, b"{}", binary=False)


def test_unknown_envelope_and_payload_fields_are_ignored():
    frame = decode_frame(json.dumps({"type": 2, "seq": 1, "extra": [1],
                                     "payload": {"to": 2, "type": "text", "content": "x",
                                                 "future": True}}))
    assert decode_payload(frame) == ChatPayload(to=2, type="text", content="x")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "text"])
def test_server_frames_decode_to_type_seq_and_a_dict(binary):
    def server_frame(type_: int, seq: int, payload: object) -> bytes | str:
        data = encode_frame(type_, seq, payload, binary=binary)
        return data if binary else data.decode()  # a text frame arrives as str

    message = Message(message_id=7, from_=1, to=2, type="text", content="hi", created_at=5)
    assert decode_server_frame(server_frame(MsgType.CHAT_PUSH, 0, message)) == (
        MsgType.CHAT_PUSH, 0, {"message_id": 7, "from": 1, "to": 2, "type": "text",
                               "content": "hi", "created_at": 5, "status": "sent"})
    error = server_frame(MsgType.ERROR, 4, ErrorPayload("WS_X", "no"))
    assert decode_server_frame(error) == (MsgType.ERROR, 4, {"code": "WS_X", "message": "no"})
    assert decode_server_frame(server_frame(MsgType.PONG, 9, None)) == (MsgType.PONG, 9, {})


def test_the_largest_seq_and_type_are_accepted():
    frame = decode_frame(mp({"type": 32767, "seq": 2**63 - 1}))
    assert (frame.type, frame.seq) == (32767, 2**63 - 1)


# envelope errors


BAD_ENVELOPES = {
    "empty-bytes": b"",
    "not-msgpack": b"\xc1",
    "msgpack-list": mp([2, 1, b""]),
    "msgpack-int": mp(5),
    "msgpack-trailing-bytes": mp({"type": 6, "seq": 1}) + b"\x00",
    "msgpack-missing-type": mp({"seq": 1}),
    "msgpack-type-is-str": mp({"type": "2"}),
    "msgpack-type-is-bool": mp({"type": True}),
    "msgpack-type-too-big": mp({"type": 32768}),
    "msgpack-seq-negative": mp({"type": 6, "seq": -1}),
    "msgpack-seq-too-big": mp({"type": 6, "seq": 2**63}),
    "msgpack-payload-is-int": mp({"type": 6, "payload": 5}),
    "msgpack-payload-is-map": mp({"type": 6, "payload": {"a": 1}}),
    "json-list": "[2, 1, {}]",
    "json-string": '"hello"',
    "json-empty": "",
    "json-trailing": '{"type": 6} {}',
    "json-truncated": '{"type": 6',
    "json-type-is-str": '{"type": "6"}',
    "json-type-is-float": '{"type": 6.5}',
    "json-seq-negative": '{"type": 6, "seq": -1}',
    "json-payload-invalid": '{"type": 6, "payload": {"a": }',
    "deeply-nested": '{"type": 6, "payload": ' + "[" * 100_000 + "]" * 100_000 + "}",
}


@pytest.mark.parametrize("data", BAD_ENVELOPES.values(), ids=BAD_ENVELOPES.keys())
def test_malformed_envelopes_are_invalid_message(data):
    with pytest.raises(ProtocolError) as exc:
        decode_frame(data)
    assert exc.value.code == ErrorCode.INVALID_MESSAGE
    assert exc.value.seq == 0
    assert exc.value.message.startswith("bad envelope: ")


# payload errors


@pytest.mark.parametrize("type_", [MsgType.AUTH_RSP, MsgType.CHAT_PUSH, MsgType.ERROR, 0, 7,
                                   999, 32767])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "text"])
def test_types_a_client_may_not_send_are_unknown_type(type_, binary):
    frame = Frame(type_, 12, b"", binary=binary)
    with pytest.raises(ProtocolError) as exc:
        decode_payload(frame)
    assert (exc.value.code, exc.value.seq) == (ErrorCode.UNKNOWN_TYPE, 12)


BAD_CHAT_PAYLOADS = {
    "missing-content": {"to": 2, "type": "text"},
    "to-is-zero": {"to": 0, "type": "text", "content": "x"},
    "to-is-str": {"to": "2", "type": "text", "content": "x"},
    "to-too-big": {"to": 2**63, "type": "text", "content": "x"},
    "unknown-chat-type": {"to": 2, "type": "video", "content": "x"},
    "content-is-null": {"to": 2, "type": "text", "content": None},
    "not-a-map": [2, "text", "x"],
}


@pytest.mark.parametrize("payload", BAD_CHAT_PAYLOADS.values(), ids=BAD_CHAT_PAYLOADS.keys())
def test_invalid_payloads_are_invalid_payload_with_the_frame_seq(payload):
    for frame in (binary_frame(mp(payload)), text_frame(json.dumps(payload).encode())):
        with pytest.raises(ProtocolError) as exc:
            decode_payload(frame)
        assert (exc.value.code, exc.value.seq) == (ErrorCode.INVALID_PAYLOAD, 3), frame


@pytest.mark.parametrize("frame", [
    binary_frame(b""),
    binary_frame(b"\xc1"),
    binary_frame(mp({"to": 2, "type": "text", "content": "x"}) + b"\x00"),
    text_frame(b"null"),
    binary_frame(mp({"token": "x" * 8193}), type_=MsgType.AUTH),
    binary_frame(mp({"token": "t", "device_id": "d" * 201}), type_=MsgType.AUTH),
    binary_frame(mp({"message_id": 1, "status": "sent"}), type_=MsgType.ACK),
    binary_frame(mp({"last_message_id": -1}), type_=MsgType.SYNC_REQ),
    binary_frame(mp({"status": "busy"}), type_=MsgType.PRESENCE),
], ids=["empty-payload", "not-msgpack", "trailing-bytes", "json-null", "token-too-long",
        "device-id-too-long", "ack-status-sent", "negative-cursor", "unknown-status"])
def test_malformed_payload_bytes_are_invalid_payload(frame):
    with pytest.raises(ProtocolError) as exc:
        decode_payload(frame)
    assert exc.value.code == ErrorCode.INVALID_PAYLOAD


def test_a_text_envelope_whose_payload_is_not_an_object_is_invalid_payload():
    frame = decode_frame('{"type": 2, "seq": 8, "payload": 5}')
    with pytest.raises(ProtocolError) as exc:
        decode_payload(frame)
    assert (exc.value.code, exc.value.seq) == (ErrorCode.INVALID_PAYLOAD, 8)


@pytest.mark.parametrize("data", [
    mp({"type": 102, "seq": 1, "payload": mp([1, 2])}),
    mp({"type": 102, "seq": 1, "payload": mp("text")}),
    '{"type": 102, "seq": 1, "payload": [1, 2]}',
    '{"type": 102, "seq": 1, "payload": null}',
    '{"type": 102, "seq": 1, "payload": 5}',
], ids=["msgpack-list", "msgpack-str", "json-list", "json-null", "json-int"])
def test_a_server_payload_that_is_not_a_map_is_invalid_payload(data):
    with pytest.raises(ProtocolError) as exc:
        decode_server_frame(data)
    assert exc.value.code == ErrorCode.INVALID_PAYLOAD
    assert exc.value.message == "payload is not a map"


def test_a_server_envelope_that_is_malformed_is_invalid_message():
    with pytest.raises(ProtocolError) as exc:
        decode_server_frame(b"\xc1")
    assert exc.value.code == ErrorCode.INVALID_MESSAGE


@pytest.mark.parametrize("payload", [b"\xc1", mp({"a": 1}) + b"\x00", b"\x81"],
                         ids=["not-msgpack", "trailing-bytes", "truncated-map"])
def test_malformed_server_payload_bytes_are_a_protocol_error(payload):
    with pytest.raises(ProtocolError) as exc:
        decode_server_frame(mp({"type": 102, "seq": 1, "payload": payload}))
    assert exc.value.code == ErrorCode.INVALID_PAYLOAD
