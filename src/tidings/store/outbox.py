"""The webhook outbox: events waiting to be told to the application (issue 21 item 2).

A row is written in the same transaction as the change it tells where the change is
the store's own (``message.stored`` rides the chat group commit, ``publication`` the
publish group commit, ``message.read`` the status update), so a committed change always
has its row and a rolled-back one never does. Other events (presence, the apps') are
added right after their change. Rows are then sent by ``webhooks/delivery.py``:
claimed with a lease (a killed node's rows come back when it runs out), retried with
backoff, ``dead`` after ``webhook_max_attempts`` tries, and replayable.

States: ``pending`` (to send, from ``next_at``), ``delivered``, ``dead``.
"""

from __future__ import annotations

import abc
from typing import Any

import msgspec

from .base import Receipt, StoredMessage
from .channels import Publication

STATES = ("pending", "delivered", "dead")

NewEvent = tuple[str, str]
"""An event to add: its name and its ``data`` as JSON text."""


class OutboxRow(msgspec.Struct, frozen=True):
    """One webhook, as the outbox holds it (``data`` is JSON text)."""

    id: int
    event: str
    data: str
    created_at: int
    state: str
    attempts: int
    next_at: int
    last_error: str
    delivered_at: int | None

    def to_json(self) -> dict[str, Any]:
        """The row as the admin API and the CLI show it."""
        out = msgspec.structs.asdict(self)
        out["data"] = msgspec.json.decode(self.data)
        return out


def message_stored(stored: list[StoredMessage]) -> list[NewEvent]:
    """``message.stored`` events of freshly stored chats."""
    return [("message.stored", msgspec.json.encode({
        "message_id": m.id, "from": m.sender_id, "device_id": m.sender_device,
        "to": m.recipient_id, "type": m.type, "content": m.content,
        "created_at": m.created_at}).decode()) for m in stored]


def message_read(receipt: Receipt, reader_id: int, at: int) -> NewEvent:
    """The ``message.read`` event of a message its recipient read."""
    return ("message.read", msgspec.json.encode({
        "message_id": receipt.message_id, "from": receipt.sender_id, "by": reader_id,
        "read_at": at}).decode())


def publications(stored: list[Publication]) -> list[NewEvent]:
    """``publication`` events of freshly stored channel publications."""
    return [("publication", msgspec.json.encode({
        "channel": p.channel, "offset": p.offset, "type": p.type,
        "data": msgspec.Raw(p.data.encode()), "user_id": p.publisher_id,
        "device_id": p.publisher_device, "created_at": p.created_at}).decode())
        for p in stored]


class Outbox(abc.ABC):
    """The outbox methods of the SQL stores. ``outbox_events`` names the events their
    own transactions record (set by the node from ``webhook_events``)."""

    outbox_events: frozenset[str] = frozenset()

    @abc.abstractmethod
    async def outbox_add(self, events: list[NewEvent]) -> None:
        """Add events (one transaction), due now."""

    @abc.abstractmethod
    async def outbox_claim(self, owner: str, now: int, lease_ms: int,
                           limit: int) -> list[OutboxRow]:
        """Lease up to ``limit`` due rows to ``owner`` until ``now + lease_ms``, oldest
        first: pending rows whose ``next_at`` passed and whose lease (if any) ran out."""

    @abc.abstractmethod
    async def outbox_delivered(self, row_ids: list[int], owner: str, now: int) -> None:
        """Mark rows this owner holds delivered (one transaction)."""

    @abc.abstractmethod
    async def outbox_failed(self, row_id: int, owner: str, error: str, next_at: int,
                            max_attempts: int) -> bool:
        """Count a failed try of a row this owner holds; retry at ``next_at``, or make
        it ``dead`` if that was try ``max_attempts``. True if it is dead now."""

    @abc.abstractmethod
    async def outbox_list(self, state: str | None, limit: int,
                          before_id: int | None = None) -> list[OutboxRow]:
        """Rows (of one state, or all), newest first, with ids below ``before_id``."""

    @abc.abstractmethod
    async def outbox_replay(self, ids: list[int] | None, now: int) -> int:
        """Send again: the dead (and delivered) rows of ``ids``, or with None every dead
        row, become pending with no tries counted. Returns how many."""

    @abc.abstractmethod
    async def outbox_purge(self, delivered_before: int) -> int:
        """Delete rows delivered before this time; returns how many."""
