"""Every wire constant of the native protocol, in one place.

Type codes 1-6 (client) and 101-106 (server) are those of seed 001 §2.2.2;
extensions start at 7 and 107. Error codes are seed 001 §5.1 plus the
additions marked below. Close codes are WebSocket private-use codes (4000-4999).
"""

from enum import IntEnum, StrEnum


class MsgType(IntEnum):
    """Message type codes carried in the envelope's ``type`` field."""

    # client -> server (seed 001)
    AUTH = 1
    CHAT = 2
    ACK = 3
    SYNC_REQ = 4
    PRESENCE = 5
    PING = 6
    # server -> client (seed 001)
    AUTH_RSP = 101
    CHAT_PUSH = 102
    SYNC_RSP = 103
    PRESENCE_PUSH = 104
    PONG = 105
    ERROR = 106
    # server -> client (Tidings extensions)
    CHAT_ACK = 107
    RECEIPT_PUSH = 108
    # channels (broker, seed 003): client -> server
    SUBSCRIBE = 10
    UNSUBSCRIBE = 11
    PUBLISH = 12
    # channels: server -> client
    SUBSCRIBE_RSP = 110
    PUBLICATION = 111
    PUBLISH_ACK = 112
    UNSUBSCRIBE_RSP = 113
    CHANNEL_PRESENCE_PUSH = 114
    # backend hooks (issue 21): client -> server, then its answer
    RPC = 13
    RPC_RSP = 115
    # credentials (issue 21): a new token for a live connection, then its answer
    REFRESH = 14
    REFRESH_RSP = 116


CLIENT_TYPES = frozenset({MsgType.AUTH, MsgType.CHAT, MsgType.ACK, MsgType.SYNC_REQ,
                          MsgType.PRESENCE, MsgType.PING, MsgType.SUBSCRIBE,
                          MsgType.UNSUBSCRIBE, MsgType.PUBLISH, MsgType.RPC,
                          MsgType.REFRESH})


class ErrorCode(StrEnum):
    """Codes carried by ``MsgError`` and by HTTP error bodies."""

    INVALID_MESSAGE = "WS_INVALID_MESSAGE"
    NOT_AUTHENTICATED = "WS_NOT_AUTHENTICATED"
    AUTH_FAILED = "WS_AUTH_FAILED"
    INVALID_PAYLOAD = "WS_INVALID_PAYLOAD"
    USER_NOT_FOUND = "WS_USER_NOT_FOUND"
    RATE_LIMITED = "WS_RATE_LIMITED"
    INTERNAL_ERROR = "WS_INTERNAL_ERROR"
    # additions
    UNKNOWN_TYPE = "WS_UNKNOWN_TYPE"
    """The envelope is valid but its type is not a client type code."""
    TOO_MANY_CONNECTIONS = "WS_TOO_MANY_CONNECTIONS"
    """The user already has the maximum number of live connections."""
    ALREADY_AUTHENTICATED = "WS_ALREADY_AUTHENTICATED"
    """A second ``MsgAuth`` on an authenticated connection."""
    SEQ_CONFLICT = "WS_SEQ_CONFLICT"
    """A chat reused a ``seq`` of this device for a different message."""
    MESSAGE_NOT_FOUND = "WS_MESSAGE_NOT_FOUND"
    """An ack named a message above the highest id sent on this connection."""
    # channels (broker)
    UNKNOWN_CHANNEL = "WS_UNKNOWN_CHANNEL"
    """The channel's namespace is not configured."""
    PERMISSION_DENIED = "WS_PERMISSION_DENIED"
    """The token's scopes or the namespace's rules forbid this; the message says which."""
    ALREADY_SUBSCRIBED = "WS_ALREADY_SUBSCRIBED"
    """``Subscribe`` to a channel this connection is already subscribed to."""
    TOO_MANY_SUBSCRIPTIONS = "WS_TOO_MANY_SUBSCRIPTIONS"
    """The connection holds ``max_subscriptions`` channels."""
    PUBLICATION_TOO_LARGE = "WS_PUBLICATION_TOO_LARGE"
    """A publication's data exceeds ``max_publication_bytes``."""
    # backend hooks (docs/integration.md)
    REFUSED_BY_BACKEND = "WS_REFUSED_BY_BACKEND"
    """The application's backend (a proxy or Python hook) refused; the message is its own."""
    BACKEND_UNAVAILABLE = "WS_BACKEND_UNAVAILABLE"
    """The backend did not answer in time or usably (or no ``rpc`` hook is set); retry."""


class CloseCode(IntEnum):
    """WebSocket close codes the server uses. 1000-1011 are RFC 6455's own."""

    NORMAL = 1000
    DISCONNECTED = 4000  # closed by an operator (server API, console); may reconnect
    GOING_AWAY = 1001  # server shutting down; reconnect
    MESSAGE_TOO_BIG = 1009  # frame over max_frame_bytes
    INTERNAL_ERROR = 1011  # the server could not replay the backlog; reconnect
    AUTH_FAILED = 4401  # bad, expired or revoked token; do not retry with it
    AUTH_TIMEOUT = 4408  # no MsgAuth within auth_timeout
    TOO_MANY_CONNECTIONS = 4409  # per-user connection limit reached
    IDLE_TIMEOUT = 4410  # nothing received within idle_timeout
    SLOW_CONSUMER = 4413  # send queue overflowed; reconnect and sync
    TOKEN_REVOKED = 4403  # the connection's token was revoked; do not retry with it
    TOKEN_EXPIRED = 4402  # the credential expired without Refresh; reconnect with a new one


# Close codes after which a client must not reconnect with the same credentials.
TERMINAL_CLOSE_CODES = frozenset({CloseCode.AUTH_FAILED, CloseCode.TOKEN_REVOKED})


class EditingEventType(StrEnum):
    """``type`` of the JSON events on ``/api/v1/ws/editing/{session_id}`` (seed 002)."""

    CONNECTED = "connected"  # first frame: a snapshot of the session's state
    TAKEOVER_REQUEST = "takeover_request"  # to the editor: someone asks for the lock
    TAKEOVER_RESPONSE = "takeover_response"  # to both sides: approved or rejected
    TAKEOVER_EXPIRED = "takeover_expired"  # to both sides: nobody answered in time
    EDITING_ENDED = "editing_ended"  # to every session of the resource: the editor changed or left
    PONG = "pong"  # answer to a client's {"type": "ping"}
    ERROR = "error"  # a client frame was refused


class EditingErrorCode(StrEnum):
    """Error codes of the editing API (HTTP error bodies and ``error`` events)."""

    WORKSPACE_NOT_FOUND = "WORKSPACE_NOT_FOUND"
    NOT_A_MEMBER = "NOT_A_MEMBER"
    READ_ONLY = "READ_ONLY"  # a viewer tried to edit
    NOT_OWNER = "NOT_OWNER"  # only the workspace owner manages members
    USER_NOT_FOUND = "USER_NOT_FOUND"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"  # ended, timed out, or another user's
    NO_EDITOR = "NO_EDITOR"  # nobody holds the lock: start editing instead
    SELF_TAKEOVER = "SELF_TAKEOVER"  # the requesting session is the editor
    TARGET_NOT_EDITOR = "TARGET_NOT_EDITOR"  # target_session_id no longer edits
    TAKEOVER_PENDING = "TAKEOVER_PENDING"  # the resource already has a pending request
    REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"
    NOT_TARGET = "NOT_TARGET"  # only the editor's session answers a request
    NOT_EDITOR = "NOT_EDITOR"  # the answering session lost the lock meanwhile
    REQUEST_NOT_PENDING = "REQUEST_NOT_PENDING"  # already approved, rejected or expired
    REQUESTER_MISMATCH = "REQUESTER_MISMATCH"  # requester_user_id is not the token's user
    NO_ANSWERING_SESSION = "NO_ANSWERING_SESSION"  # no session_id, and none of yours answers
    SESSION_REQUIRED = "SESSION_REQUIRED"  # no session_id, and both sides are yours (tabs)
    BAD_FRAME = "BAD_FRAME"  # a WebSocket frame that is not {"type": ...} JSON text
    UNKNOWN_TYPE = "UNKNOWN_TYPE"  # a WebSocket frame of a type the server does not take
