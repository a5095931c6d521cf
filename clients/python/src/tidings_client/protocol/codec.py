"""Envelope encoding and decoding, bytes in and bytes out (no sockets).

Binary frames (seed 001 §2.2.1) are a MessagePack map
``{type, seq, payload}`` whose ``payload`` is itself MessagePack-encoded bytes.
Text frames carry the same envelope as JSON, with ``payload`` an inline JSON
object. The server answers in the framing the client used.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

from tidings_client.protocol.codes import ErrorCode, MsgType
from tidings_client.protocol.messages import (
    AckPayload,
    AuthPayload,
    ChatPayload,
    Payload,
    PresencePayload,
    PublishPayload,
    RefreshPayload,
    RpcPayload,
    SubscribePayload,
    SyncRequestPayload,
    UnsubscribePayload,
)

Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
TypeCode = Annotated[int, msgspec.Meta(ge=0, le=32767)]  # seed: int16


class BinaryEnvelope(msgspec.Struct, gc=False):
    """Binary framing: ``payload`` holds MessagePack bytes (empty for none)."""

    type: TypeCode
    seq: Seq = 0
    payload: bytes | None = None


class TextEnvelope(msgspec.Struct):
    """Text framing: ``payload`` is an inline JSON object (kept raw until typed)."""

    type: TypeCode
    seq: Seq = 0
    payload: msgspec.Raw = msgspec.Raw(b"{}")


class _OutEnvelope(msgspec.Struct, gc=False):
    """What the server sends in binary framing: the same bytes as the map
    ``{"type", "seq", "payload"}``, encoded in half the time (one per ack and push)."""

    type: int
    seq: int
    payload: bytes


class Frame(msgspec.Struct, frozen=True, gc=False):
    """A decoded envelope. ``payload`` is still encoded: see :func:`decode_payload`."""

    type: int
    seq: int
    payload: bytes
    binary: bool


class ProtocolError(Exception):
    """A frame or payload that cannot be accepted, with the code to answer."""

    def __init__(self, code: ErrorCode, message: str, seq: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.seq = seq


_bin_envelope = msgspec.msgpack.Decoder(BinaryEnvelope)
_text_envelope = msgspec.json.Decoder(TextEnvelope)
_msgpack = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()

PAYLOAD_TYPES: dict[int, type[Payload]] = {
    MsgType.AUTH: AuthPayload,
    MsgType.CHAT: ChatPayload,
    MsgType.ACK: AckPayload,
    MsgType.SYNC_REQ: SyncRequestPayload,
    MsgType.PRESENCE: PresencePayload,
    MsgType.SUBSCRIBE: SubscribePayload,
    MsgType.UNSUBSCRIBE: UnsubscribePayload,
    MsgType.PUBLISH: PublishPayload,
    MsgType.RPC: RpcPayload,
    MsgType.REFRESH: RefreshPayload,
}
_bin_payload = {t: msgspec.msgpack.Decoder(cls) for t, cls in PAYLOAD_TYPES.items()}
_text_payload = {t: msgspec.json.Decoder(cls) for t, cls in PAYLOAD_TYPES.items()}
_EMPTY_MAP, _EMPTY_JSON = b"\x80", b"{}"  # a missing payload means "every field default"

P = TypeVar("P", bound=Payload)


def decode_frame(data: bytes | str) -> Frame:
    """Decode one WebSocket message; ``str`` means a text frame.

    Raise :class:`ProtocolError` with ``WS_INVALID_MESSAGE`` if the envelope is
    malformed (not a map, missing ``type``, wrong field types, trailing bytes).
    A ``str`` holding a lone surrogate (no socket delivers one, but a caller
    may) is refused the same way: ``UnicodeError`` covers encoding it.
    """
    try:
        if isinstance(data, str):
            env = _text_envelope.decode(data)
            return Frame(env.type, env.seq, bytes(env.payload), binary=False)
        benv = _bin_envelope.decode(data)
        return Frame(benv.type, benv.seq, benv.payload or b"", binary=True)
    except (msgspec.DecodeError, RecursionError, UnicodeError) as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"bad envelope: {exc}") from None


def decode_payload(frame: Frame) -> Payload | None:
    """Decode and validate the payload of a client frame by its type code.

    Return None for types without a payload (``MsgPing``). Raise
    :class:`ProtocolError`: ``WS_UNKNOWN_TYPE`` for a type a client may not
    send, ``WS_INVALID_PAYLOAD`` for a payload that does not validate.
    """
    if frame.type == MsgType.PING:
        return None
    decoders = _bin_payload if frame.binary else _text_payload
    decoder = decoders.get(frame.type)
    if decoder is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {frame.type}",
                            frame.seq)
    data = frame.payload or (_EMPTY_JSON if not frame.binary else _EMPTY_MAP)
    try:
        payload: Payload = decoder.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeError) as exc:
        raise ProtocolError(ErrorCode.INVALID_PAYLOAD, f"bad payload: {exc}", frame.seq) from None
    return payload


def encode_frame(type_: int, seq: int, payload: Any, *, binary: bool) -> bytes:
    """Encode one envelope. ``payload`` is a Struct, a dict or None.

    Returns bytes in both framings; for text framing they are UTF-8 JSON.
    """
    if binary:
        body = _msgpack.encode(payload) if payload is not None else b""
        return _msgpack.encode(_OutEnvelope(type_, seq, body))
    raw = msgspec.Raw(_json.encode(payload) if payload is not None else b"{}")
    return _json.encode({"type": type_, "seq": seq, "payload": raw})


def decode_server_frame(data: bytes | str) -> tuple[int, int, dict[str, Any]]:
    """Decode a server frame into ``(type, seq, payload dict)``; used by clients."""
    frame = decode_frame(data)
    if not frame.payload:
        return frame.type, frame.seq, {}
    try:
        decoded = (msgspec.msgpack.decode(frame.payload) if frame.binary
                   else msgspec.json.decode(frame.payload))
    except (msgspec.DecodeError, RecursionError, UnicodeError) as exc:
        raise ProtocolError(ErrorCode.INVALID_PAYLOAD, f"bad payload: {exc}", frame.seq) from None
    if not isinstance(decoded, dict):
        raise ProtocolError(ErrorCode.INVALID_PAYLOAD, "payload is not a map")
    return frame.type, frame.seq, decoded


def encode_client_frame(type_: int, seq: int, payload: Any, *, binary: bool) -> bytes | str:
    """Encode a client frame: bytes for binary framing, str for text framing."""
    data = encode_frame(type_, seq, payload, binary=binary)
    return data if binary else data.decode()
