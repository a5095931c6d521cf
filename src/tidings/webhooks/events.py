"""Webhook event names, which of them a node records, and the events that are not the
store's own change: presence, takeover requests (seed 002) and desks (seed 000).

Those are added to the outbox right after their change commits, in a transaction of
their own (their change lives in the cluster registry or the apps' tables), so a node
killed between the two loses that one event; the store's own changes (``message.*``,
``publication``) cannot be lost that way: their row is in the change's transaction.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import Any

import msgspec

from tidings.bus.base import DeskChangeEvent, EditingEvent
from tidings.store.outbox import NewEvent, Outbox

log = logging.getLogger(__name__)

EVENTS = ("message.stored", "message.read", "user.online", "user.offline", "publication",
          "takeover.request", "takeover.response", "takeover.expired",
          "workstation.created", "workstation.updated", "workstation.deleted")
"""Every event a webhook can tell."""

_TAKEOVER = {"takeover_request": "takeover.request", "takeover_response": "takeover.response",
             "takeover_expired": "takeover.expired"}
_WORKSTATION = {"INSERT": "workstation.created", "UPDATE": "workstation.updated",
                "DELETE": "workstation.deleted"}


def wanted(patterns: list[str]) -> frozenset[str]:
    """The events ``webhook_events`` names (shell patterns, ``*`` for all). ``ValueError``
    names a pattern that matches no event."""
    out: set[str] = set()
    for pattern in patterns:
        found = fnmatch.filter(EVENTS, pattern)
        if not found:
            raise ValueError(f"invalid setting: webhook_events: {pattern!r} names no event "
                             f"(events: {', '.join(EVENTS)})")
        out.update(found)
    return frozenset(out)


class EventRecorder:
    """Adds the events that are not the store's own change to the outbox."""

    def __init__(self, outbox: Outbox, events: frozenset[str]) -> None:
        self.outbox = outbox
        self.events = events

    async def add(self, event: str, data: dict[str, Any]) -> None:
        """Add one event if it is wanted (a failure is logged: the change stands)."""
        if event not in self.events:
            return
        try:
            await self.outbox.outbox_add([(event, msgspec.json.encode(data).decode())])
        except Exception as exc:
            log.error("webhook %s not recorded: %s", event, exc)

    async def presence(self, user_id: int, status: str) -> None:
        """A user's first connection in the cluster opened, or their last one closed."""
        await self.add(f"user.{status}", {"user_id": user_id})

    async def editing(self, event: EditingEvent) -> None:
        """A takeover request was made, answered or expired."""
        name = _TAKEOVER.get(event.type)
        if name is not None:
            await self.add(name, dict(event.data))

    async def desks(self, changes: list[DeskChangeEvent]) -> None:
        """Rows of the desk map changed; workstations are told."""
        batch: list[NewEvent] = []
        for change in changes:
            name = _WORKSTATION.get(change.op)
            if change.table == "workstations" and name in self.events and name is not None:
                batch.append((name, msgspec.json.encode({
                    "id": change.id, "workstation_id": change.workstation_id,
                    "floor_id": change.floor_id,
                    "department_id": change.department_id}).decode()))
        if batch:
            try:
                await self.outbox.outbox_add(batch)
            except Exception as exc:
                log.error("%d workstation webhooks not recorded: %s", len(batch), exc)
