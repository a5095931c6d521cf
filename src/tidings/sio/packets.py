"""The Engine.IO 4 and Socket.IO 5 wire, sans-I/O: text packets in, tuples out.

Engine.IO packet: one digit (its type), then its data. Over long-polling several go
in one HTTP body, separated by ``\\x1e``. Socket.IO packet (inside an Engine.IO
``MESSAGE``): ``<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]``. Binary
attachments (Socket.IO types 5 and 6, Engine.IO ``b`` packets) are not supported: no
event of the desk map carries binary data, and a client that sends one is refused
with :class:`PacketError`. See https://socket.io/docs/v4/engine-io-protocol/ and
https://socket.io/docs/v4/socket-io-protocol/.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

# Engine.IO packet types
OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = "0", "1", "2", "3", "4", "5", "6"
# Socket.IO packet types
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)

SEPARATOR = "\x1e"  # between Engine.IO packets in one long-polling body
PROBE = "probe"  # the data of the ping and pong that test an upgrade

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class PacketError(ValueError):
    """A packet that is not valid Engine.IO 4 / Socket.IO 5 (or one we do not take)."""


class SioPacket(NamedTuple):
    """One decoded Socket.IO packet."""

    type: int
    namespace: str
    id: int | None
    data: Any


def open_packet(sid: str, upgrades: list[str], ping_interval: float, ping_timeout: float,
                max_payload: int) -> str:
    """The Engine.IO handshake (``OPEN``), times in seconds."""
    return OPEN + _encoder.encode({
        "sid": sid, "upgrades": upgrades, "pingInterval": int(ping_interval * 1000),
        "pingTimeout": int(ping_timeout * 1000), "maxPayload": max_payload}).decode()


def split_payload(body: str) -> list[str]:
    """The Engine.IO packets of one long-polling POST body."""
    return body.split(SEPARATOR)


def join_payload(packets: list[str]) -> str:
    """One long-polling GET body."""
    return SEPARATOR.join(packets)


def event_message(event: str, data: Any) -> bytes:
    """An Engine.IO ``MESSAGE`` carrying a Socket.IO ``EVENT`` of namespace ``/`` with
    one argument, UTF-8: the bytes every recipient of a room emit is sent."""
    return b"42" + _encoder.encode([event, data])


def ack_message(ack_id: int, args: list[Any]) -> str:
    """An Engine.IO ``MESSAGE`` carrying the Socket.IO ``ACK`` of event ``ack_id``."""
    return f"43{ack_id}" + _encoder.encode(args).decode()


def connect_message(sid: str) -> str:
    """Namespace ``/`` accepted: ``CONNECT`` with the Socket.IO session id."""
    return "40" + _encoder.encode({"sid": sid}).decode()


def connect_error_message(namespace: str, message: str, data: Any = None) -> str:
    """A namespace refused: ``CONNECT_ERROR`` with ``{message, data}`` (socket.io-client
    hands both to ``connect_error``)."""
    body: dict[str, Any] = {"message": message}
    if data is not None:
        body["data"] = data
    prefix = "" if namespace == "/" else namespace + ","
    return "44" + prefix + _encoder.encode(body).decode()


DISCONNECT_MESSAGE = "41"  # the server leaves namespace "/"


def decode_sio(text: str) -> SioPacket:
    """The Socket.IO packet in an Engine.IO ``MESSAGE``'s data."""
    if not text or not text[0].isdigit():
        raise PacketError("a Socket.IO packet starts with its type")
    kind = int(text[0])
    if kind > BINARY_ACK:
        raise PacketError(f"unknown Socket.IO packet type {kind}")
    if kind in (BINARY_EVENT, BINARY_ACK):
        raise PacketError("binary attachments are not supported")
    i, n = 1, len(text)
    namespace = "/"
    if i < n and text[i] == "/":
        end = text.find(",", i)
        if end < 0:
            namespace, i = text[i:], n
        else:
            namespace, i = text[i:end], end + 1
    start = i
    while i < n and text[i].isdigit():
        i += 1
    ack_id = int(text[start:i]) if i > start else None
    if ack_id is not None and (i - start > 15):
        raise PacketError("ack id too long")
    data: Any = None
    if i < n:
        try:
            data = _decoder.decode(text[i:])
        except msgspec.DecodeError:
            raise PacketError("the packet's data is not JSON") from None
    if kind == EVENT and (not isinstance(data, list) or not data
                          or not isinstance(data[0], str)):
        raise PacketError("an event is a JSON array starting with its name")
    if kind == ACK and (ack_id is None or not isinstance(data, list)):
        raise PacketError("an ack is an id and a JSON array")
    if kind == CONNECT and data is not None and not isinstance(data, dict):
        raise PacketError("a connect's auth is a JSON object")
    return SioPacket(kind, namespace, ack_id, data)
