"""The AsyncAPI 3.0 document of a node's WebSockets, served at ``/api/asyncapi.json``.

``/ws`` is described from ``protocol/`` alone: :data:`WS_MESSAGES` names every type
code of :class:`MsgType` (``tests/api/test_asyncapi.py`` fails if one is missing, and
compares codes and names with docs/protocol.md), with the payload struct the codec
decodes or the server encodes. Other sockets (the editing socket) register a
:class:`Socket` with :func:`describe_socket` where they add their route.

The application described is the Tidings server: ``receive`` operations are what a
client sends, ``send`` operations what the server sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from aiohttp import web

from tidings import __version__
from tidings.api.errors import json_response
from tidings.api.openapi import DOCS_PATH, Operation, describe, ecma_patterns
from tidings.protocol import messages as m
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType

ASYNCAPI_PATH = "/api/asyncapi.json"
_REF = "#/components/schemas/{name}"


Sender = Literal["client", "server"]


@dataclass(frozen=True)
class WsMessage:
    """One message of a socket: its name, who sends it, and its payload's type."""

    key: str | int  # the type code (``/ws``) or the ``type`` string (editing)
    name: str
    sender: Sender
    payload: Any
    summary: str
    replies: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class Socket:
    """A WebSocket endpoint: its path, the envelope its frames share, its messages."""

    id: str
    address: str
    title: str
    description: str
    messages: tuple[WsMessage, ...]
    envelope: str  # "ws" ({type, seq, payload}) or "event" ({type, data})
    parameters: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


_C: Sender = "client"
_S: Sender = "server"
WS_MESSAGES = (
    WsMessage(MsgType.AUTH, "MsgAuth", _C, m.AuthPayload, "Authenticate (first frame)",
              (MsgType.AUTH_RSP,)),
    WsMessage(MsgType.CHAT, "MsgChat", _C, m.ChatPayload, "Send a chat; seq is its "
              "idempotency key", (MsgType.CHAT_ACK, MsgType.ERROR)),
    WsMessage(MsgType.ACK, "MsgAck", _C, m.AckPayload, "Delivered or read up to a message"),
    WsMessage(MsgType.SYNC_REQ, "MsgSyncReq", _C, m.SyncRequestPayload,
              "A page of messages after an id", (MsgType.SYNC_RSP,)),
    WsMessage(MsgType.PRESENCE, "MsgPresence", _C, m.PresencePayload, "Set your status"),
    WsMessage(MsgType.PING, "MsgPing", _C, None, "Keep alive", (MsgType.PONG,)),
    WsMessage(MsgType.SUBSCRIBE, "Subscribe", _C, m.SubscribePayload,
              "Subscribe to a channel, from an offset", (MsgType.SUBSCRIBE_RSP,)),
    WsMessage(MsgType.UNSUBSCRIBE, "Unsubscribe", _C, m.UnsubscribePayload,
              "Leave a channel", (MsgType.UNSUBSCRIBE_RSP,)),
    WsMessage(MsgType.PUBLISH, "Publish", _C, m.PublishPayload, "Publish to a channel",
              (MsgType.PUBLISH_ACK, MsgType.ERROR)),
    WsMessage(MsgType.RPC, "Rpc", _C, m.RpcPayload, "Call a method of the application's "
              "backend (docs/integration.md)", (MsgType.RPC_RSP, MsgType.ERROR)),
    WsMessage(MsgType.REFRESH, "Refresh", _C, m.RefreshPayload, "A new credential for this "
              "connection before the current one expires (docs/security.md)",
              (MsgType.REFRESH_RSP, MsgType.ERROR)),
    WsMessage(MsgType.AUTH_RSP, "MsgAuthRsp", _S, m.AuthResponsePayload, "Auth result"),
    WsMessage(MsgType.CHAT_PUSH, "MsgChatPush", _S, m.Message, "A message of your stream"),
    WsMessage(MsgType.SYNC_RSP, "MsgSyncRsp", _S, m.SyncResponsePayload,
              "A page of messages (backlog or sync)"),
    WsMessage(MsgType.PRESENCE_PUSH, "MsgPresencePush", _S, m.PresencePushPayload,
              "A user's status changed"),
    WsMessage(MsgType.PONG, "MsgPong", _S, None, "Answer to MsgPing"),
    WsMessage(MsgType.ERROR, "MsgError", _S, m.ErrorPayload, "A frame was refused"),
    WsMessage(MsgType.CHAT_ACK, "ChatAck", _S, m.ChatAckPayload, "Your chat is stored"),
    WsMessage(MsgType.RECEIPT_PUSH, "ReceiptPush", _S, m.ReceiptPushPayload,
              "Your messages were delivered or read"),
    WsMessage(MsgType.SUBSCRIBE_RSP, "SubscribeRsp", _S, m.SubscribeResponsePayload,
              "Subscribed, with the first replayed publications"),
    WsMessage(MsgType.PUBLICATION, "Publication", _S, m.PublicationPayload,
              "A publication of a subscribed channel"),
    WsMessage(MsgType.PUBLISH_ACK, "PublishAck", _S, m.PublishAckPayload,
              "Your publication is stored"),
    WsMessage(MsgType.UNSUBSCRIBE_RSP, "UnsubscribeRsp", _S, m.UnsubscribeResponsePayload,
              "Unsubscribed"),
    WsMessage(MsgType.CHANNEL_PRESENCE_PUSH, "ChannelPresencePush", _S,
              m.ChannelPresencePushPayload, "Someone joined or left a channel"),
    WsMessage(MsgType.RPC_RSP, "RpcRsp", _S, m.RpcResponsePayload,
              "The backend's answer to Rpc (same seq)"),
    WsMessage(MsgType.REFRESH_RSP, "RefreshRsp", _S, m.RefreshResponsePayload,
              "The new credential is taken (same seq): when it expires, and after a "
              "refresh token the new JWT and refresh token"),
)

_CLOSE_MEANING = {
    CloseCode.NORMAL: "normal closure",
    CloseCode.GOING_AWAY: "the server is shutting down; reconnect with backoff",
    CloseCode.DISCONNECTED: "closed by an operator (server API, console; they may choose "
                            "another code in 4000-4999); reconnect per policy",
    CloseCode.MESSAGE_TOO_BIG: "a message exceeded max_frame_bytes",
    CloseCode.INTERNAL_ERROR: "the backlog could not be replayed; reconnect with backoff",
    CloseCode.AUTH_FAILED: "bad, expired or revoked token: do not retry with it",
    CloseCode.AUTH_TIMEOUT: "no MsgAuth within auth_timeout",
    CloseCode.TOO_MANY_CONNECTIONS: "connection limit reached, or replaced by a newer "
                                    "connection of the same device",
    CloseCode.IDLE_TIMEOUT: "nothing received within idle_timeout",
    CloseCode.SLOW_CONSUMER: "send queue full or a write blocked; reconnect and sync",
    CloseCode.TOKEN_REVOKED: "the token was revoked: do not retry with it",
    CloseCode.TOKEN_EXPIRED: "the credential expired without a Refresh: reconnect with a "
                             "new token",
}

# Sent by the frame parser (RFC 6455) or seen by clients only: not in CloseCode.
RFC_CLOSE_CODES = (
    (1002, "PROTOCOL_ERROR", "a WebSocket protocol violation (e.g. an unmasked client frame)"),
    (1007, "INVALID_PAYLOAD_DATA", "invalid UTF-8 in a text frame"),
    (1006, "ABNORMAL_CLOSURE", "client-side only: the connection was lost without a close "
                               "frame; reconnect with backoff"),
)

WS = Socket(
    "ws", "/ws", "Native protocol (seed 001 + extensions)",
    "Every frame is an envelope `{type, seq, payload}`: a JSON text frame as shown here, or "
    "a MessagePack binary frame whose `payload` is a bin holding the MessagePack-encoded "
    "payload (docs/protocol.md, Framing). A refused frame gets `MsgError`; the connection "
    "closes only with the close codes listed in `x-tidings-close-codes`.",
    WS_MESSAGES, "ws",
    extensions={
        "x-tidings-error-codes": [c.value for c in ErrorCode],
        "x-tidings-close-codes": [
            *({"code": int(c), "name": c.name, "meaning": _CLOSE_MEANING[c]} for c in CloseCode),
            *({"code": code, "name": name, "meaning": meaning}
              for code, name, meaning in RFC_CLOSE_CODES)],
    })

WEBSOCKET = Operation("GET", "/ws", "openWebSocket", "The native protocol's WebSocket (see "
                      "the AsyncAPI document)", "realtime", auth="none", status=101,
                      errors={400: ("BAD_REQUEST",), 403: ("ORIGIN_NOT_ALLOWED",),
                              426: ("UPGRADE_REQUIRED",)},
                      description="Authenticate with `MsgAuth` after the upgrade.",
                      extensions={"x-tidings-asyncapi": "ws",
                                  "x-tidings-path": "unversioned: seed 001 names /ws"})

SOCKETS: web.AppKey[list[Socket]] = web.AppKey("asyncapi_sockets", list)
DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("asyncapi_document", dict)


def describe_socket(app: web.Application, socket: Socket) -> None:
    """Register a WebSocket endpoint ``app`` serves (call where its route is added)."""
    if SOCKETS not in app:
        app[SOCKETS] = []
    app[SOCKETS].append(socket)


def _envelope(socket: Socket, msg: WsMessage, payload: dict[str, Any] | None) -> dict[str, Any]:
    if socket.envelope == "ws":
        props: dict[str, Any] = {
            "type": {"const": int(msg.key)},
            "seq": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1,
                    "description": "the request's seq in a reply; 0 in pushes"}}
        if payload is not None:
            props["payload"] = payload
        return {"type": "object", "properties": props, "required": ["type"]}
    props = {"type": {"const": str(msg.key)}}
    if payload is not None:
        props["data"] = payload
    return {"type": "object", "properties": props, "required": ["type"]}


def _message_name(socket: Socket, msg: WsMessage) -> str:
    return msg.name if socket.envelope == "ws" else f"{socket.id}.{msg.name}"


def build(sockets: list[Socket]) -> Any:
    """The AsyncAPI 3.0 document of ``sockets``."""
    kinds = [msg.payload for s in sockets for msg in s.messages if msg.payload is not None]
    unique = list({id(k): k for k in kinds}.values())
    found, schemas = msgspec.json.schema_components(unique, ref_template=_REF)
    by_id = {id(k): s for k, s in zip(unique, found, strict=True)}
    schemas["ErrorCode"] = {"type": "string", "enum": [c.value for c in ErrorCode],
                            "description": "`code` of MsgError and of HTTP error bodies"}
    if "ErrorPayload" in schemas:  # MsgError's code is one of them
        schemas["ErrorPayload"]["properties"]["code"] = {"$ref": _REF.format(name="ErrorCode")}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for socket in sockets:
        names = {msg.key: _message_name(socket, msg) for msg in socket.messages}
        channel: dict[str, Any] = {
            "address": socket.address, "title": socket.title,
            "description": socket.description,
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names.values()},
            **socket.extensions}
        if socket.parameters:
            channel["parameters"] = {k: {"description": v} for k, v in socket.parameters.items()}
        channels[socket.id] = channel
        for msg in socket.messages:
            name = names[msg.key]
            payload = None if msg.payload is None else by_id[id(msg.payload)]
            messages[name] = {
                "name": name, "title": msg.name, "summary": msg.summary,
                "contentType": "application/json",
                "payload": _envelope(socket, msg, payload),
                "x-tidings-type": msg.key if isinstance(msg.key, str) else int(msg.key)}
            op: dict[str, Any] = {
                "action": "receive" if msg.sender == _C else "send",
                "channel": {"$ref": f"#/channels/{socket.id}"},
                "summary": msg.summary,
                "messages": [{"$ref": f"#/channels/{socket.id}/messages/{name}"}]}
            if msg.replies:
                op["reply"] = {"channel": {"$ref": f"#/channels/{socket.id}"}, "messages": [
                    {"$ref": f"#/channels/{socket.id}/messages/{names[r]}"}
                    for r in msg.replies]}
            operations[f"{socket.id}.{name.split('.')[-1]}"] = op
    return ecma_patterns({
        "asyncapi": "3.0.0",
        "info": {"title": "Tidings WebSockets", "version": __version__,
                 "description": "The WebSockets of a Tidings node, described from the "
                                "server's side: `receive` is what a client sends, `send` "
                                "what the server sends. Prose: docs/protocol.md.",
                 "license": {"name": "MIT"}},
        "defaultContentType": "application/json",
        "channels": channels, "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    })


def document(app: web.Application) -> dict[str, Any]:
    """The document of ``app``, built on first use."""
    if not app[DOCUMENT]:
        app[DOCUMENT].update(build(app.get(SOCKETS, [])))
    return app[DOCUMENT]


async def asyncapi_json(request: web.Request) -> web.Response:
    """``GET /api/asyncapi.json``: this document."""
    return json_response(document(request.app))


def add_routes(app: web.Application) -> None:
    """Describe ``/ws`` and serve the document at ``/api/asyncapi.json``."""
    describe_socket(app, WS)
    app[DOCUMENT] = {}
    app.router.add_get(ASYNCAPI_PATH, asyncapi_json)
    describe(app, [Operation("GET", ASYNCAPI_PATH, "getAsyncApi", "The AsyncAPI 3.0 "
                             "document of the WebSockets", "documents", auth="none",
                             answer=dict[str, Any],
                             extensions={"x-tidings-path": DOCS_PATH})])
