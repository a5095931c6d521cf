"""Every Redis key and channel name Tidings uses, in one place.

All keys start with ``tidings:`` so that one Redis can hold other data too.
Keys that hold a user's or a node's data take its id as an argument; hash tags
are not used because Tidings does not support Redis Cluster (one primary).
"""

from __future__ import annotations

PREFIX = "tidings:"

# bus
BUS_CHANNEL = PREFIX + "bus"
"""Pub/sub channel every node publishes events to and subscribes to."""

# cluster registry (cluster/redis.py)
NODES = PREFIX + "nodes"
"""Sorted set: node id -> lease expiry (ms). A node whose expiry passed is dead."""


def node_info(node_id: str) -> str:
    """Hash: address, started_at, last heartbeat and connection count of a node."""
    return f"{PREFIX}node:{node_id}"


def node_connections(node_id: str) -> str:
    """Hash: connection id -> user id, for the connections a node holds."""
    return f"{PREFIX}node:{node_id}:conns"


USER_CONNECTIONS = PREFIX + "user:%s:conns"
"""Format of :func:`user_connections` (Lua scripts build the key from a user id)."""


def user_connections(user_id: int) -> str:
    """Hash: connection id -> node id, for every live connection of a user."""
    return USER_CONNECTIONS % user_id


CHOSEN_PRESENCE = PREFIX + "presence:chosen"
"""Hash: user id -> status the user chose with MsgPresence (away, offline)."""

# store (store/redis.py), seed 004's Redis Streams layout
NEXT_USER_ID = PREFIX + "seq:user"
NEXT_TOKEN_ID = PREFIX + "seq:token"
NEXT_MESSAGE_ID = PREFIX + "seq:message"
USERS_BY_NAME = PREFIX + "users:by_name"
"""Hash: username -> user id."""
TOKENS_BY_HASH = PREFIX + "tokens:by_hash"
"""Hash: token hash -> token id."""
MESSAGES = PREFIX + "messages"
"""Hash: message id -> the message's immutable fields (msgpack)."""
STATUSES = PREFIX + "statuses"
"""Hash: message id -> sent, delivered or read."""
MESSAGE_TIMES = PREFIX + "message_times"
"""Stream: one entry per appended batch, id = Redis time (ms), field ``i`` = the batch's
last message id; retention finds the last id stored before a time here."""
INBOX_PATTERN = PREFIX + "inbox:*"
"""SCAN pattern of every :func:`inbox` stream."""
CONVERSATION_PATTERN = PREFIX + "conv:*"
"""SCAN pattern of every :func:`conversation` stream."""
CLIENT_SEQS = PREFIX + "client_seqs"
"""Hash: "sender:device:seq" -> message id, for idempotent sends."""
MIGRATIONS = PREFIX + "migrations"
"""Set of applied schema versions (the Redis store's own, see store/redis.py)."""


def user(user_id: int) -> str:
    """String: a user record (msgpack)."""
    return f"{PREFIX}user:{user_id}"


def token(token_id: int) -> str:
    """String: a token record (msgpack)."""
    return f"{PREFIX}token:{token_id}"


def inbox(user_id: int) -> str:
    """Stream: every message to or from a user, entry id ``<message id>-0``; a device's
    stream is read from it with XRANGE after the device's last id (seed 004)."""
    return f"{PREFIX}inbox:{user_id}"


def conversation(user_a: int, user_b: int) -> str:
    """Stream: the messages between two users, entry id ``<message id>-0``."""
    low, high = sorted((user_a, user_b))
    return f"{PREFIX}conv:{low}:{high}"


def peers(user_id: int) -> str:
    """Sorted set: peer id -> last message id exchanged with them."""
    return f"{PREFIX}peers:{user_id}"


def undelivered(user_id: int) -> str:
    """Sorted set: ids of messages to a user still in status sent (score = id)."""
    return f"{PREFIX}undelivered:{user_id}"


def user_tokens(user_id: int) -> str:
    """Sorted set: a user's token ids (score = id, so newest is highest)."""
    return f"{PREFIX}user:{user_id}:tokens"


REVOKED_TOKENS = PREFIX + "tokens:revoked"
"""Sorted set: token id -> revoked_at (ms)."""


def channel_log(channel: str) -> str:
    """Stream: a channel's retained publications, entry id ``<offset>-0``."""
    return f"{PREFIX}channel:{channel}:log"


def channel_top(channel: str) -> str:
    """String: a channel's last offset (0 if never published to)."""
    return f"{PREFIX}channel:{channel}:top"


CHANNELS = PREFIX + "channels"
"""Set: every channel ever published to."""


def channel_keys(channel: str) -> str:
    """Hash: idempotency key -> "offset:created_at" for a channel's recent publications."""
    return f"{PREFIX}channel:{channel}:keys"


PUBLICATION_COUNTS = PREFIX + "channels:daily"
"""Hash: "day|type" -> publications on that UTC day of that type."""


def client_sync(user_id: int, device_id: str) -> str:
    """String (JSON): a device's sync state, seed 004's ``client:sync:{user_id}:{device_id}``,
    with a TTL (``sync_state_ttl``)."""
    return f"client:sync:{user_id}:{device_id}"


def client_syncs(user_id: int) -> str:
    """SCAN pattern: every device sync state of one user (deleting a user)."""
    return f"client:sync:{user_id}:*"


# admin (store/admin.py)
AUDIT_LOG = PREFIX + "audit"
"""Stream: the audit log, entry id ``<entry id>-0``, field ``e`` the msgpack entry."""
NEXT_AUDIT_ID = PREFIX + "seq:audit"

# desks (apps/desks)
#: Integer bumped on every desk change; cached desk lists are filed under it, so a
#: bump makes every older entry unreachable at once (they then expire by TTL).
DESKS_CACHE_GENERATION = PREFIX + "desks:cache:generation"


def desks_cache_entry(generation: int, digest: str) -> str:
    """A cached desk-map response: ``digest`` names the endpoint and its parameters."""
    return f"{PREFIX}desks:cache:{generation}:{digest}"
