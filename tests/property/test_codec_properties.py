"""Property tests of the frame decoder and payload validation (hypothesis).

The promise under test (docs/protocol.md, "Errors"): whatever bytes or text a
client sends, :func:`decode_frame` and :func:`decode_payload` either return a
frame / a payload that satisfies every documented constraint, or raise
:class:`ProtocolError` with the documented code and seq — never anything else.
The same holds for :func:`decode_server_frame`, which the SDK runs on what a
server sends. Inputs are random bytes and text, random MessagePack and JSON
values, envelope-shaped maps with random field values, and valid frames with
random bytes flipped, cut or inserted.

``HYPOTHESIS_PROFILE=fuzz`` (``make fuzz``) runs many more examples.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tidings.protocol.codec import (
    PAYLOAD_TYPES,
    Frame,
    ProtocolError,
    decode_frame,
    decode_payload,
    decode_server_frame,
    encode_client_frame,
)
from tidings.protocol.codes import ErrorCode, MsgType
from tidings.protocol.messages import (
    AckPayload,
    AuthPayload,
    ChatPayload,
    Payload,
    PresencePayload,
    SyncRequestPayload,
)

I64_MAX = 2**63 - 1
FIELD_NAMES = ["type", "seq", "payload", "to", "content", "token", "device_id", "message_id",
               "status", "last_message_id", "last_sync_time", "from", "x"]

# -- strategies ---------------------------------------------------------------------------

# Integers at and around every bound the protocol has (int16 type, int64 ids, uint64).
edge_ints = st.sampled_from([0, 1, -1, 6, 32767, 32768, I64_MAX, I64_MAX + 1, -(2**63),
                             2**64 - 1])
ints = st.one_of(edge_ints, st.integers(-(2**63), 2**64 - 1))
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=True),
                    st.text(max_size=40), st.binary(max_size=40))
ext = st.builds(msgspec.msgpack.Ext, st.integers(-128, 127), st.binary(max_size=16))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8), st.integers(-5, 5))
    return st.one_of(st.lists(children, max_size=6),
                     st.dictionaries(keys, children, max_size=6))


msgpack_values = st.recursive(st.one_of(scalars, ext), _containers, max_leaves=30)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=40)),
    lambda children: st.one_of(st.lists(children, max_size=6),
                               st.dictionaries(st.text(max_size=8), children, max_size=6)),
    max_leaves=30)


def _field(name: str) -> st.SearchStrategy[Any]:
    """Values a field plausibly gets: mostly near-valid, sometimes anything."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "type": st.one_of(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 101, 0]), ints,
                          st.sampled_from(["text", "voice", "image", "2", ""])),
        "status": st.sampled_from(["online", "offline", "away", "delivered", "read", "sent",
                                   "READ", ""]),
        "content": st.text(max_size=60),
        "token": st.text(max_size=60),
        "device_id": st.one_of(st.none(), st.text(max_size=210)),
    }
    near = plausible.get(name, ints)
    return st.one_of(near, near, msgpack_values)


@st.composite
def payload_maps(draw: st.DrawFn) -> dict[str, Any]:
    """A map with some of the real payload field names, each with a plausible value."""
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=5, unique=True))
    return {name: draw(_field(name)) for name in names}


@st.composite
def binary_envelopes(draw: st.DrawFn) -> bytes:
    """A MessagePack envelope whose fields (and payload bytes) are near-valid or not."""
    env: dict[str, Any] = {}
    if draw(st.booleans()) or True:
        env["type"] = draw(_field("type"))
    if draw(st.booleans()):
        env["seq"] = draw(st.one_of(ints, msgpack_values))
    payload = draw(st.one_of(
        st.builds(msgspec.msgpack.encode, payload_maps()),  # the usual: bytes of a map
        st.builds(msgspec.msgpack.encode, msgpack_values),
        st.binary(max_size=40), msgpack_values, st.none()))
    if draw(st.booleans()):
        env["payload"] = payload
    return msgspec.msgpack.encode(env)


@st.composite
def text_envelopes(draw: st.DrawFn) -> str:
    """A JSON envelope with an inline payload, near-valid or not."""
    env: dict[str, Any] = {"type": draw(st.one_of(st.integers(0, 200), json_values))}
    if draw(st.booleans()):
        env["seq"] = draw(st.one_of(st.integers(-1, 2**64), json_values))
    if draw(st.booleans()):
        env["payload"] = draw(st.one_of(
            st.fixed_dictionaries({}, optional={n: json_values for n in FIELD_NAMES}),
            json_values))
    return json.dumps(env, ensure_ascii=draw(st.booleans()))


# Valid payloads of every client type, within the documented constraints (hypothesis
# cannot read msgspec's Meta bounds, so they are spelt out here).
ids = st.integers(1, I64_MAX)
short_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=200)
valid_payloads: st.SearchStrategy[tuple[int, Payload]] = st.one_of(
    st.tuples(st.just(MsgType.AUTH), st.builds(
        AuthPayload, token=st.text(st.characters(codec="utf-8"), max_size=8192),
        device_id=st.one_of(st.none(), short_text))),
    st.tuples(st.just(MsgType.CHAT), st.builds(
        ChatPayload, to=ids, type=st.sampled_from(["text", "voice", "image"]),
        content=st.text(st.characters(codec="utf-8")))),
    st.tuples(st.just(MsgType.ACK), st.builds(
        AckPayload, message_id=ids, status=st.sampled_from(["delivered", "read"]))),
    st.tuples(st.just(MsgType.SYNC_REQ), st.builds(
        SyncRequestPayload, last_message_id=st.integers(0, I64_MAX),
        last_sync_time=st.integers(0, I64_MAX))),
    st.tuples(st.just(MsgType.PRESENCE), st.builds(
        PresencePayload, status=st.sampled_from(["online", "offline", "away"]))),
)


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes | str:
    type_, payload = draw(valid_payloads)
    seq = draw(st.integers(0, I64_MAX))
    return encode_client_frame(type_, seq, payload, binary=draw(st.booleans()))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes | str:
    """A valid frame with bytes flipped, cut, duplicated or inserted."""
    data = draw(valid_frames())
    raw = bytearray(data.encode() if isinstance(data, str) else data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del raw[at:at + draw(st.integers(1, 8))]
        elif op == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            raw[at:at] = raw[at:at + draw(st.integers(1, 8))]
    if isinstance(data, str):
        return bytes(raw).decode("utf-8", errors=draw(st.sampled_from(["replace", "ignore"])))
    return bytes(raw)


any_text = st.text(st.characters(codec=None), max_size=200)  # lone surrogates included
client_inputs = st.one_of(st.binary(max_size=300), any_text, binary_envelopes(),
                          text_envelopes(), mutated_frames(),
                          st.builds(msgspec.msgpack.encode, msgpack_values))

# -- the checks ---------------------------------------------------------------------------

PAYLOAD_ERRORS = {ErrorCode.UNKNOWN_TYPE, ErrorCode.INVALID_PAYLOAD}


def check_payload_is_valid(type_: int, payload: Payload) -> None:
    """Every constraint docs/protocol.md states for an accepted payload."""
    assert isinstance(payload, PAYLOAD_TYPES[type_])
    if isinstance(payload, AuthPayload):
        assert isinstance(payload.token, str) and len(payload.token) <= 8192
        assert payload.device_id is None or (
            isinstance(payload.device_id, str) and len(payload.device_id) <= 200
            and "\x00" not in payload.device_id)
    elif isinstance(payload, ChatPayload):
        assert type(payload.to) is int and 1 <= payload.to <= I64_MAX
        assert payload.type in ("text", "voice", "image")
        assert isinstance(payload.content, str)
    elif isinstance(payload, AckPayload):
        assert type(payload.message_id) is int and 1 <= payload.message_id <= I64_MAX
        assert payload.status in ("delivered", "read")
    elif isinstance(payload, SyncRequestPayload):
        assert type(payload.last_message_id) is int and 0 <= payload.last_message_id <= I64_MAX
        assert type(payload.last_sync_time) is int and 0 <= payload.last_sync_time <= I64_MAX
    else:
        assert isinstance(payload, PresencePayload)
        assert payload.status in ("online", "offline", "away")


def decode_as_the_gateway_does(data: bytes | str) -> tuple[Frame, Payload | None] | None:
    """``decode_frame`` then ``decode_payload``; None if refused with the right code."""
    try:
        frame = decode_frame(data)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.INVALID_MESSAGE and exc.seq == 0, (exc.code, exc.seq)
        return None
    assert type(frame.type) is int and 0 <= frame.type <= 32767
    assert type(frame.seq) is int and 0 <= frame.seq <= I64_MAX
    assert isinstance(frame.payload, bytes) and frame.binary is isinstance(data, bytes)
    try:
        payload = decode_payload(frame)
    except ProtocolError as exc:
        assert exc.code in PAYLOAD_ERRORS and exc.seq == frame.seq, (exc.code, exc.seq)
        assert (exc.code == ErrorCode.UNKNOWN_TYPE) == (
            frame.type not in PAYLOAD_TYPES and frame.type != MsgType.PING)
        return None
    if frame.type == MsgType.PING:
        assert payload is None
    else:
        assert payload is not None
        check_payload_is_valid(frame.type, payload)
    return frame, payload


SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    deadline=None)


@SETTINGS
@given(client_inputs)
@example(b"\xc1")  # the one byte MessagePack never uses
@example(b"\x81\xa4type\x06\xa7payload\xc4\x01\xc1")  # a payload of a reserved byte
@example('{"type":2,"payload":{"to":1,"type":"text","content":"\\ud800"}}')  # lone escape
@example('{"type":2,"payload":{"to":1,"type":"text","content":"\ud800"}}')  # lone surrogate
@example(b"\x81\xa4type\x02" + b"\x91" * 3000)  # nesting deeper than any sane frame
@example(b"\xdd\xff\xff\xff\xff")  # array32 claiming 4 G elements with no data
def test_any_client_input_decodes_to_a_valid_payload_or_a_documented_error(data):
    decode_as_the_gateway_does(data)


@SETTINGS
@given(valid_frames())
def test_valid_frames_are_accepted_and_round_trip(data):
    decoded = decode_as_the_gateway_does(data)
    assert decoded is not None, "a frame the codec itself encoded was refused"
    frame, payload = decoded
    again = decode_as_the_gateway_does(
        encode_client_frame(frame.type, frame.seq, payload, binary=frame.binary))
    assert again == (frame, payload) or (again is not None and again[1] == payload)


@SETTINGS
@given(st.integers(0, 32767), st.integers(0, I64_MAX), st.booleans())
def test_every_type_code_is_either_a_client_type_or_unknown_type(type_, seq, binary):
    frame = Frame(type_, seq, b"", binary=binary)
    try:
        decode_payload(frame)
    except ProtocolError as exc:
        expected = (ErrorCode.UNKNOWN_TYPE if type_ not in PAYLOAD_TYPES
                    else ErrorCode.INVALID_PAYLOAD)  # an empty payload lacks required fields
        assert (exc.code, exc.seq) == (expected, seq)
    else:
        assert type_ == MsgType.PING or PAYLOAD_TYPES[type_] is SyncRequestPayload


@SETTINGS
@given(st.one_of(st.binary(max_size=300), any_text, binary_envelopes(), text_envelopes(),
                 st.builds(msgspec.msgpack.encode, msgpack_values)))
def test_any_server_input_decodes_to_a_dict_or_raises_protocol_error(data):
    # What the SDK runs on every frame a server sends: a hostile or broken server must
    # not make it raise anything it does not catch.
    try:
        type_, seq, body = decode_server_frame(data)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.INVALID_MESSAGE, ErrorCode.INVALID_PAYLOAD)
        return
    assert 0 <= type_ <= 32767 and 0 <= seq <= I64_MAX and isinstance(body, dict)
