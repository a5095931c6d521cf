"""What the server API (issue 21) asks of a store beyond chat: change or delete a user,
empty a channel's history, and the audit log of admin actions.

Deleting a user (the documented rule, docs/api.md "Delete a user"): the account, its
tokens and its device cursors go; the messages it sent or received **stay** in the log,
so that the other party's history keeps its shape (they show the deleted sender's id,
which the user directory then no longer names). The user's id is never given again.

Emptying a channel's history removes its retained publications but keeps its offset:
the next publication continues from it, so a subscriber that resumes from an older
offset is told ``recovered: false`` rather than seeing offsets start over.

The audit log is append-only: one entry per admin action (who, what, when, on what),
listed newest first.
"""

from __future__ import annotations

import abc
from typing import Any

import msgspec


class AuditEntry(msgspec.Struct, frozen=True):
    """One admin action. ``details`` is JSON text; times are ms since the epoch."""

    id: int
    at: int
    actor_id: int
    actor: str  # the acting user's name
    action: str  # e.g. ``user.disconnect``, ``token.create``, ``webhook.replay``
    target: str  # what it acted on, e.g. ``user:5``, ``channel:news``
    details: str
    remote: str  # the caller's address

    def to_json(self) -> dict[str, Any]:
        """The entry as the API and the console show it (``details`` decoded)."""
        out = msgspec.structs.asdict(self)
        out["details"] = msgspec.json.decode(self.details)
        return out


class NewAudit(msgspec.Struct, frozen=True):
    """An entry to add (the store numbers it)."""

    at: int
    actor_id: int
    actor: str
    action: str
    target: str
    details: str = "{}"
    remote: str = ""


class AdminStore(abc.ABC):
    """The admin part of :class:`~tidings.store.base.Store`."""

    @abc.abstractmethod
    async def update_user(self, user_id: int, *, username: str | None = None,
                          password_hash: str | None = None) -> bool:
        """Rename the user and/or set its password hash; False if there is no such user.
        Raise :class:`~tidings.store.base.Conflict` if the new name is taken."""

    @abc.abstractmethod
    async def delete_user(self, user_id: int) -> bool:
        """Delete the user, its tokens and device cursors (messages stay); False if there
        was no such user."""

    @abc.abstractmethod
    async def clear_channel(self, channel: str) -> int:
        """Remove a channel's retained publications (its offset stays); return how many."""

    @abc.abstractmethod
    async def audit_add(self, entry: NewAudit) -> AuditEntry:
        """Append one entry to the audit log."""

    @abc.abstractmethod
    async def audit_list(self, limit: int, before: int | None = None,
                         action: str | None = None) -> list[AuditEntry]:
        """Entries newest first: at most ``limit``, ids below ``before``, and only those
        whose action is ``action`` or starts with ``action.`` if given."""
