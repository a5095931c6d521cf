"""Payload structures of the native protocol (seed 001 §2.2.3 plus extensions).

Field names are the wire names. Structs validate on decode: a payload whose
fields have the wrong type or are out of range is refused with
``WS_INVALID_PAYLOAD``. Unknown fields are ignored so that newer clients can
talk to older servers.

The structs made once per chat are ``gc=False`` (they hold only numbers, strings and
other such structs, so they cannot be part of a reference cycle): the garbage
collector neither tracks nor counts them (bench: durable chat; see cli.py's GC note).
"""

from typing import Annotated, Any, Literal

import msgspec

Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
OptionalId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
# NUL is refused in identifiers: PostgreSQL text cannot hold it.
ShortText = Annotated[str, msgspec.Meta(max_length=200, pattern=r"\A[^\x00]*\Z")]
ChatType = Literal["text", "voice", "image"]
DeliveryStatus = Literal["sent", "delivered", "read"]
PresenceStatus = Literal["online", "offline", "away"]
ChannelName = Annotated[str, msgspec.Meta(min_length=1, max_length=255,
                                          pattern=r"\A[A-Za-z0-9_.:@/=+#~-]+\Z")]
PublicationType = Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                              pattern=r"\A[A-Za-z0-9_.:-]+\Z")]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=128,
                                             pattern=r"\A[^\x00]*\Z")]
Offset = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class Payload(msgspec.Struct, omit_defaults=True):
    """Base of every payload."""


# client -> server


class AuthPayload(Payload):
    """``MsgAuth``: a token, and optionally the device this connection is."""

    token: Annotated[str, msgspec.Meta(max_length=8192)]
    device_id: ShortText | None = None


class ChatPayload(Payload, gc=False):
    """``MsgChat``: a message to one user."""

    to: Id
    type: ChatType
    content: str


class AckPayload(Payload):
    """``MsgAck``: this device received (or the user read) ``message_id``."""

    message_id: Id
    status: Literal["delivered", "read"]


class SyncRequestPayload(Payload):
    """``MsgSyncReq``: messages after ``last_message_id``, one page."""

    last_message_id: OptionalId = 0
    last_sync_time: OptionalId = 0


class PresencePayload(Payload):
    """``MsgPresence``: the user's own status."""

    status: PresenceStatus


class SubscribePayload(Payload):
    """``Subscribe`` (10): deliver a channel's publications; with ``since``, first
    those after that offset (recovery)."""

    channel: ChannelName
    since: Offset | None = None


class UnsubscribePayload(Payload):
    """``Unsubscribe`` (11)."""

    channel: ChannelName


class PublishPayload(Payload):
    """``Publish`` (12): ``data`` is any JSON value (MessagePack: the same)."""

    channel: ChannelName
    data: Any
    type: PublicationType = "message"
    idempotency_key: IdempotencyKey | None = None


class RpcPayload(Payload):
    """``Rpc`` (13): call ``method`` of the application's backend with ``data``."""

    method: Annotated[str, msgspec.Meta(min_length=1, max_length=200,
                                        pattern=r"\A[^\x00]*\Z")]
    data: Any = None


class RefreshPayload(Payload):
    """``Refresh`` (14): a new credential for this connection — an access token (JWT or
    ``tdg_``) of the same user, or a refresh token (``tdr_``), rotated by the server."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]


# server -> client


class AuthResponsePayload(Payload):
    """``MsgAuthRsp``; ``data`` only if the connect hook returned some; ``expires_at``
    (ms since the epoch) when the credential expires, if it does — send ``Refresh``
    before then."""

    success: bool
    user_id: int = 0
    error: str = ""
    device_id: str = ""
    data: Any = None
    expires_at: int | None = None


class Message(Payload, omit_defaults=False, gc=False):
    """A stored chat message as clients see it (in pushes, sync pages, history)."""

    message_id: int
    from_: int = msgspec.field(name="from")
    to: int
    type: str
    content: str
    created_at: int  # milliseconds since the epoch
    status: str = "sent"


class SyncResponsePayload(Payload, omit_defaults=False):
    """``MsgSyncRsp``: a page of messages in id order."""

    messages: list[Message]
    has_more: bool


class PresencePushPayload(Payload):
    """``MsgPresencePush``."""

    user_id: int
    status: str


class ErrorPayload(Payload, omit_defaults=False):
    """``MsgError``: ``code`` is one of :class:`~tidings_client.protocol.codes.ErrorCode`."""

    code: str
    message: str


class ChatAckPayload(Payload, gc=False):
    """``ChatAck`` (107): the chat sent with ``seq`` is durably stored."""

    message_id: int
    created_at: int


class ReceiptPushPayload(Payload):
    """``ReceiptPush`` (108): messages of this user reached ``status`` at ``by``."""

    message_ids: list[int]
    status: str
    by: int


class ClientInfo(Payload, omit_defaults=False):
    """Who published: a user, and the device (``"http"`` for the HTTP API)."""

    user_id: int
    device_id: str


class PublicationPayload(Payload, omit_defaults=False):
    """``Publication`` (111), also the items of ``SubscribeRsp.publications``."""

    channel: str
    offset: int
    type: str
    data: Any
    info: ClientInfo
    created_at: int


class SubscribeResponsePayload(Payload, omit_defaults=False):
    """``SubscribeRsp`` (110): the channel's top ``offset`` when subscribed, whether
    everything after ``since`` could be replayed, and the first replayed publications."""

    channel: str
    offset: int
    recovered: bool
    publications: list[PublicationPayload]


class PublishAckPayload(Payload, omit_defaults=False):
    """``PublishAck`` (112): the publication is stored (or was, for a repeated key)."""

    channel: str
    offset: int
    created_at: int
    duplicate: bool


class UnsubscribeResponsePayload(Payload, omit_defaults=False):
    """``UnsubscribeRsp`` (113)."""

    channel: str


class ChannelPresencePushPayload(Payload, omit_defaults=False):
    """``ChannelPresencePush`` (114): someone joined or left a channel."""

    channel: str
    event: str  # "join" or "leave"
    user_id: int
    device_id: str


class RpcResponsePayload(Payload, omit_defaults=False):
    """``RpcRsp`` (115): the backend's answer to ``Rpc`` (same ``seq``)."""

    method: str
    data: Any


class RefreshResponsePayload(Payload):
    """``RefreshRsp`` (116): the connection's credential now expires at ``expires_at`` (ms
    since the epoch; null: never). After a refresh token, ``token`` is the new JWT and
    ``refresh_token`` the next refresh token (the one sent is used up)."""

    expires_at: int | None = None
    token: str = ""
    refresh_token: str = ""
