"""Records of collaborative editing and their JSON shapes on the wire."""

from __future__ import annotations

from typing import Any

import msgspec

from tidings.apps.editing.db import Row

#: A takeover request's statuses (seed 002 "状态管理").
PENDING, APPROVED, REJECTED, EXPIRED = "pending", "approved", "rejected", "expired"

#: Why a request expired (``reason``): nobody answered, or a side went away.
TIMEOUT, EDITOR_LEFT, REQUESTER_LEFT = "timeout", "editor_left", "requester_left"

#: Why an editing period ended (``editing_ended``'s ``reason``).
TAKEN_OVER, ENDED, TIMED_OUT = "taken_over", "ended", "timed_out"


class Session(msgspec.Struct, frozen=True):
    """One client (tab) that opened a resource, editing it or not."""

    session_id: str
    workspace_id: int
    resource_id: int
    user_id: int
    user_name: str
    started_at: int
    heartbeat_at: int

    @classmethod
    def from_row(cls, row: Row) -> Session:
        """From a ``SELECT * FROM editing_sessions`` row."""
        return msgspec.convert(row, cls)


class Editor(msgspec.Struct, frozen=True):
    """Who holds a resource's editing lock, and since when."""

    session_id: str
    user_id: int
    user_name: str
    since: int

    def to_json(self, viewer_id: int | None = None) -> dict[str, Any]:
        """The editor as JSON; ``same_user`` tells ``viewer_id`` it is one of theirs."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        if viewer_id is not None:
            data["same_user"] = viewer_id == self.user_id
        return data


class TakeoverRequest(msgspec.Struct, frozen=True):
    """A row of ``takeover_requests``."""

    id: int
    workspace_id: int
    resource_id: int
    requester_user_id: int
    requester_name: str
    requester_session_id: str
    target_user_id: int
    target_name: str
    target_session_id: str
    status: str
    reason: str | None
    created_at: int
    expires_at: int
    responded_at: int | None
    requester_display_name: str | None = None  # seed 002's requester_name, display only

    @classmethod
    def from_row(cls, row: Row) -> TakeoverRequest:
        """From a ``SELECT * FROM takeover_requests`` row."""
        return msgspec.convert(row, cls)

    @property
    def same_user(self) -> bool:
        """True when a user asks to move editing from one of their tabs to another."""
        return self.requester_user_id == self.target_user_id

    def to_json(self, now: int) -> dict[str, Any]:
        """The request as the API and the events show it."""
        return {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "resource_id": self.resource_id,
            "status": self.status,
            "reason": self.reason,
            "same_user": self.same_user,
            "requester": {"user_id": self.requester_user_id, "user_name": self.requester_name,
                          "session_id": self.requester_session_id,
                          "display_name": self.requester_display_name},
            "target": {"user_id": self.target_user_id, "user_name": self.target_name,
                       "session_id": self.target_session_id},
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "expires_in_ms": max(0, self.expires_at - now) if self.status == PENDING else 0,
            "responded_at": self.responded_at,
        }
