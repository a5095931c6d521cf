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


CLIENT_TYPES = frozenset({MsgType.AUTH, MsgType.CHAT, MsgType.ACK, MsgType.SYNC_REQ,
                          MsgType.PRESENCE, MsgType.PING})


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


class CloseCode(IntEnum):
    """WebSocket close codes the server uses. 1000-1011 are RFC 6455's own."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down; reconnect
    MESSAGE_TOO_BIG = 1009  # frame over max_frame_bytes
    INTERNAL_ERROR = 1011  # the server could not replay the backlog; reconnect
    AUTH_FAILED = 4401  # bad, expired or revoked token; do not retry with it
    AUTH_TIMEOUT = 4408  # no MsgAuth within auth_timeout
    TOO_MANY_CONNECTIONS = 4409  # per-user connection limit reached
    IDLE_TIMEOUT = 4410  # nothing received within idle_timeout
    SLOW_CONSUMER = 4413  # send queue overflowed; reconnect and sync


# Close codes after which a client must not reconnect with the same credentials.
TERMINAL_CLOSE_CODES = frozenset({CloseCode.AUTH_FAILED})
