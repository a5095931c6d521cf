"""The store interface: users, access tokens, the message log and device cursors.

Every backend (``sqlite://``, ``postgresql://``) implements :class:`Store` and
passes ``tests/store/test_contract.py``. Times are integer milliseconds since
the epoch. Message ids are assigned by the store, increase strictly, and are
committed in id order, so a reader that has seen id N never later finds a new
id below N: that is what makes a single integer cursor per device enough.

The message structs are ``gc=False``: made per chat, holding no containers, never in
a reference cycle (see protocol/messages.py).
"""

from __future__ import annotations

import abc
import time

import msgspec

from .admin import AdminStore
from .channels import BrokerStats, ChannelPage, NewPublication, PublishResult


def now_ms() -> int:
    """Current wall-clock time in integer milliseconds."""
    return time.time_ns() // 1_000_000


class StoreError(Exception):
    """Base of the errors a store raises on purpose."""


class Conflict(StoreError):
    """A uniqueness rule was broken (e.g. a username already taken)."""


class User(msgspec.Struct, frozen=True):
    """A registered user."""

    id: int
    username: str
    password_hash: str
    created_at: int


class Token(msgspec.Struct, frozen=True):
    """An opaque access token; only its hash is stored."""

    id: int
    user_id: int
    token_hash: str
    name: str
    device_id: str | None
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None
    scopes: tuple[str, ...] | None = None  # None: every right of the user
    device_info: dict[str, str] = msgspec.field(default_factory=dict)


class NewMessage(msgspec.Struct, frozen=True, gc=False):
    """A chat message to append. ``client_seq`` 0 means "not idempotent"."""

    sender_id: int
    sender_device: str
    recipient_id: int
    type: str
    content: str
    client_seq: int = 0


class StoredMessage(msgspec.Struct, frozen=True, gc=False):
    """A message as stored. ``status`` is sent, delivered or read."""

    id: int
    sender_id: int
    sender_device: str
    recipient_id: int
    type: str
    content: str
    client_seq: int
    status: str
    created_at: int


class AppendResult(msgspec.Struct, frozen=True, gc=False):
    """Outcome of appending one :class:`NewMessage`.

    ``duplicate`` is true when ``(sender_id, sender_device, client_seq)`` was
    already stored: ``message`` is then the earlier message, unchanged.
    """

    message: StoredMessage
    duplicate: bool


class Receipt(msgspec.Struct, frozen=True):
    """A message whose status moved forward, and who sent it."""

    message_id: int
    sender_id: int


STATUS_RANK = {"sent": 0, "delivered": 1, "read": 2}


class Store(AdminStore):
    """Durable state of a Tidings node. All methods are coroutines and safe to
    call concurrently from one event loop."""

    @abc.abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending schema migrations; return the names applied."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the database cannot be reached."""

    async def refresh(self) -> None:
        """Open fresh connections for the next statements; called when ``ping`` fails.
        After a partition every pooled connection may be dead without a word (no FIN,
        no RST), and each would otherwise be found one statement timeout at a time.
        Statements in flight are left to finish or time out. A store without a pool
        of network connections has nothing to refresh."""
        return None

    # users

    @abc.abstractmethod
    async def create_user(self, username: str, password_hash: str) -> User:
        """Create a user. Raise :class:`Conflict` if the name is taken."""

    @abc.abstractmethod
    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""

    @abc.abstractmethod
    async def get_user_by_name(self, username: str) -> User | None:
        """The user with this name, or None."""

    # tokens

    @abc.abstractmethod
    async def create_token(self, user_id: int, token_hash: str, *, name: str = "",
                           device_id: str | None = None, expires_at: int | None = None,
                           scopes: tuple[str, ...] | None = None,
                           device_info: dict[str, str] | None = None) -> Token:
        """Store a new access token (its hash only)."""

    @abc.abstractmethod
    async def get_token_by_id(self, token_id: int) -> Token | None:
        """The token with this id (revoked or not), or None."""

    @abc.abstractmethod
    async def list_tokens(self, user_id: int) -> list[Token]:
        """Every token of a user, revoked ones included, newest first."""

    @abc.abstractmethod
    async def update_token(self, token: Token) -> bool:
        """Store ``token``'s name, device_id, expires_at, scopes and device_info
        (other fields are ignored); False if no such token."""

    @abc.abstractmethod
    async def revoke_tokens(self, user_id: int | None, token_ids: list[int],
                            at: int) -> list[int]:
        """Revoke those of ``token_ids`` that belong to ``user_id`` (any user if None)
        and are not revoked yet; return their ids, ascending."""

    @abc.abstractmethod
    async def tokens_revoked_since(self, at: int) -> list[int]:
        """Ids of tokens revoked at or after ``at`` (ms), ascending."""

    @abc.abstractmethod
    async def get_token(self, token_hash: str) -> Token | None:
        """The token with this hash (revoked or not), or None."""

    @abc.abstractmethod
    async def touch_token(self, token_id: int, at: int) -> None:
        """Record that the token was used at ``at``."""

    async def store_acks(self, acks: list[tuple[int, str, int]]) -> list[list[Receipt]]:
        """For each ``(user_id, device_id, up_to_id)``: advance the device's cursor and
        mark the user's messages up to it delivered (:meth:`advance_cursor`, then
        :meth:`mark_delivered`); each one's receipts, in input order. A backend may do
        them all in one transaction: after a reconnect storm every device acks its
        backlog at once."""
        receipts = []
        for user_id, device_id, up_to in acks:
            await self.advance_cursor(user_id, device_id, up_to)
            receipts.append(await self.mark_delivered(user_id, up_to))
        return receipts

    async def touch_tokens(self, uses: list[tuple[int, int]]) -> None:
        """Record several uses, ``(token_id, at)`` each (a backend may do it in one
        transaction: a reconnect storm touches thousands of tokens at once)."""
        for token_id, at in uses:
            await self.touch_token(token_id, at)

    @abc.abstractmethod
    async def revoke_token(self, token_id: int, at: int) -> bool:
        """Revoke a token; False if it was unknown or already revoked."""

    # message log

    @abc.abstractmethod
    async def append_messages(self, batch: list[NewMessage]) -> list[AppendResult]:
        """Append a batch in one transaction (group commit); results in input order.

        Ids are assigned in input order. A message whose
        ``(sender_id, sender_device, client_seq)`` exists (``client_seq`` > 0)
        is not stored again; its result is the existing message with
        ``duplicate=True``. A duplicate within the batch itself behaves alike.
        """

    @abc.abstractmethod
    async def get_message(self, message_id: int) -> StoredMessage | None:
        """One message by id, or None."""

    @abc.abstractmethod
    async def last_message_id(self) -> int:
        """The highest message id committed so far (0 if none): where a node that
        starts listening to the bus knows the log to be complete (hub/gapfill.py)."""

    @abc.abstractmethod
    async def messages_for_device(self, user_id: int, device_id: str, after_id: int,
                                  limit: int) -> list[StoredMessage]:
        """The device's stream after ``after_id``, in id order, at most ``limit``.

        A device's stream holds every message addressed to its user, plus the
        messages its user sent from *other* devices.
        """

    @abc.abstractmethod
    async def history(self, user_id: int, peer_id: int, before_id: int | None,
                      limit: int) -> list[StoredMessage]:
        """Messages between two users with id < ``before_id``, newest first."""

    @abc.abstractmethod
    async def conversation_peers(self, user_id: int) -> list[int]:
        """Users this user has exchanged at least one message with."""

    @abc.abstractmethod
    async def mark_delivered(self, recipient_id: int, up_to_id: int) -> list[Receipt]:
        """Move every message to ``recipient_id`` with id <= ``up_to_id`` from sent
        to delivered; return those that changed, in id order."""

    @abc.abstractmethod
    async def mark_read(self, recipient_id: int, message_id: int) -> Receipt | None:
        """Move one message to ``recipient_id`` to read (from sent or delivered).
        None if it is not addressed to that user or was already read."""

    # device cursors

    @abc.abstractmethod
    async def get_cursor(self, user_id: int, device_id: str) -> int:
        """Highest message id this device has confirmed (0 if none)."""

    @abc.abstractmethod
    async def advance_cursor(self, user_id: int, device_id: str, message_id: int) -> int:
        """Move the device's cursor forward to ``message_id`` (never backwards);
        return the cursor now stored."""

    # channels (the broker of seed 003; records in store/channels.py)

    @abc.abstractmethod
    async def append_publications(self, batch: list[NewPublication]) -> list[PublishResult]:
        """Append a batch in one transaction; results in input order.

        Each publication gets the next offset of its channel, in input order, and
        offsets commit in offset order. A publication whose ``idempotency_key`` its
        channel saw within the idempotency window is not stored again: its result
        is the first one's, with ``duplicate=True``. Afterwards every channel of the
        batch is trimmed to its ``retention``.
        """

    @abc.abstractmethod
    async def read_channel(self, channel: str, after_offset: int, limit: int,
                           not_before: int) -> ChannelPage:
        """Up to ``limit`` publications after ``after_offset`` in offset order, none
        created before ``not_before`` (ms): those count as dropped by retention."""

    @abc.abstractmethod
    async def broker_stats(self) -> BrokerStats:
        """Publications per channel (ever, retained) and per UTC day and type."""
