"""Collaborative editing's routes as the OpenAPI document shows them: the JSON shapes
its handlers answer (``models.*.to_json``; ``tests/api`` checks real answers against
these) and one :class:`Operation` per route of routes.py.

The paths are seed 002's (``/api/v1/workspaces/...``, ``/api/v1/ws/...``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from tidings.api.openapi import Operation, Param
from tidings.apps.editing.routes import (
    MemberBody,
    SessionBody,
    TakeoverRequestBody,
    TakeoverResponseBody,
    WorkspaceBody,
)
from tidings.protocol.codes import EditingErrorCode as Code

Role = Literal["owner", "editor", "viewer"]


class Workspace(msgspec.Struct):
    """A workspace and the caller's role in it."""

    id: int
    name: str
    owner_id: int
    created_at: int
    role: Role


class Workspaces(msgspec.Struct):
    """The caller's workspaces."""

    workspaces: list[Workspace]


class Member(msgspec.Struct):
    """A member of a workspace."""

    user_id: int
    user_name: str
    role: Role
    added_at: int


class Members(msgspec.Struct):
    """The members of a workspace."""

    members: list[Member]


class MemberSet(msgspec.Struct):
    """A membership as written."""

    workspace_id: int
    user_id: int
    role: Role
    added_at: int


class EditorView(msgspec.Struct):
    """Who holds the editing lock; ``same_user``: one of the caller's own sessions."""

    session_id: str
    user_id: int
    user_name: str
    since: int
    same_user: bool = False  # absent in events


class Party(msgspec.Struct):
    """One side of a takeover request."""

    user_id: int
    user_name: str
    session_id: str


class Requester(Party):
    """The asking side; ``display_name``: seed 002's ``requester_name`` as sent (shown
    as given, never trusted)."""

    display_name: str | None


class TakeoverView(msgspec.Struct):
    """A takeover request (times in ms; ``expires_in_ms`` 0 once answered)."""

    id: int
    workspace_id: int
    resource_id: int
    status: Literal["pending", "approved", "rejected", "expired"]
    reason: str | None
    same_user: bool
    requester: Requester
    target: Party
    created_at: int
    expires_at: int
    expires_in_ms: int
    responded_at: int | None


class Started(msgspec.Struct):
    """A new session; ``editing`` when it got the lock, else who holds it."""

    session_id: str
    editing: bool
    editor: EditorView | None
    heartbeat_interval_ms: int


class Heartbeat(msgspec.Struct):
    """Whether this session still edits, and who does."""

    editing: bool
    editor: EditorView | None


class Ended(msgspec.Struct):
    """The session ended; ``was_editing`` when it held the lock."""

    ended: bool
    was_editing: bool


class EditingStatus(msgspec.Struct):
    """Who edits, and the pending takeover request if any."""

    editor: EditorView | None
    pending_request: TakeoverView | None


class OneRequest(msgspec.Struct):
    """A takeover request."""

    request: TakeoverView


class Requests(msgspec.Struct):
    """Pending takeover requests addressed to a session."""

    requests: list[TakeoverView]


class OpenSession(msgspec.Struct):
    """A session with an editing socket open on this node."""

    session_id: str
    workspace_id: int
    resource_id: int
    user_id: int
    user_name: str
    sockets: int
    connected_at: int


class OpenSessions(msgspec.Struct):
    """Sessions with a socket open on this node."""

    sessions: list[OpenSession]


_TAG = "editing"
_BASE = "/api/v1/workspaces/{id}/resources/{resource_id}/editing"
_WS = (Param("id", int, "the workspace", "path"),)
_RES = (*_WS, Param("resource_id", int, "the resource", "path"))
_MEMBER = {403: (Code.NOT_A_MEMBER,), 404: (Code.WORKSPACE_NOT_FOUND,)}
_EDIT = {403: (Code.NOT_A_MEMBER, Code.READ_ONLY), 404: (Code.WORKSPACE_NOT_FOUND,)}
_SESSION = {**_EDIT, 404: (Code.WORKSPACE_NOT_FOUND, Code.SESSION_NOT_FOUND)}


def _op(method: str, path: str, op_id: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, op_id, summary, _TAG, **kw)


ROUTES = (
    _op("POST", "/api/v1/workspaces", "createWorkspace", "Create a workspace (you own it)",
        body=WorkspaceBody, answer=Workspace, status=201),
    _op("GET", "/api/v1/workspaces", "listWorkspaces", "Your workspaces", answer=Workspaces),
    _op("GET", "/api/v1/workspaces/{id}/members", "listMembers", "A workspace's members",
        params=_WS, answer=Members, errors=_MEMBER),
    _op("PUT", "/api/v1/workspaces/{id}/members/{user_id}", "setMember",
        "Add a member or change their role (owner only)", body=MemberBody, answer=MemberSet,
        params=(*_WS, Param("user_id", int, "the member", "path")),
        errors={403: (Code.NOT_A_MEMBER, Code.NOT_OWNER),
                404: (Code.WORKSPACE_NOT_FOUND, Code.USER_NOT_FOUND), 409: (Code.NOT_OWNER,)}),
    _op("POST", _BASE + "/start", "startEditing", "Open a resource: a new session",
        params=_RES, answer=Started, status=201, errors=_MEMBER),
    _op("POST", _BASE + "/heartbeat", "editingHeartbeat", "Keep a session alive",
        params=_RES, body=SessionBody, answer=Heartbeat, errors=_SESSION),
    _op("POST", _BASE + "/end", "endEditing", "End a session", params=_RES, body=SessionBody,
        answer=Ended, errors=_SESSION),
    _op("GET", _BASE + "/status", "getEditingStatus", "Who edits a resource", params=_RES,
        answer=EditingStatus, errors=_MEMBER),
    _op("POST", _BASE + "/takeover-request", "requestTakeover", "Ask the editor for the lock",
        params=_RES, body=TakeoverRequestBody, answer=OneRequest, status=201,
        errors={**_SESSION, 409: (Code.NO_EDITOR, Code.SELF_TAKEOVER, Code.TARGET_NOT_EDITOR,
                                  Code.TAKEOVER_PENDING)}),
    _op("POST", _BASE + "/takeover-response", "respondTakeover",
        "The editor approves or rejects a request", params=_RES, body=TakeoverResponseBody,
        answer=OneRequest,
        errors={**_SESSION, 403: (Code.NOT_A_MEMBER, Code.READ_ONLY, Code.NOT_TARGET),
                404: (Code.WORKSPACE_NOT_FOUND, Code.SESSION_NOT_FOUND,
                      Code.REQUEST_NOT_FOUND),
                409: (Code.NOT_EDITOR, Code.REQUEST_NOT_PENDING)}),
    _op("GET", _BASE + "/pending-requests", "listPendingRequests",
        "Pending requests addressed to a session", answer=Requests,
        params=(*_RES, Param("session_id", str, "the editor's session (es_…)",
                             required=True)), errors=_SESSION),
    _op("GET", _BASE + "/request-status/{request_id}", "getRequestStatus",
        "A takeover request", answer=OneRequest,
        params=(*_RES, Param("request_id", int, "the request", "path")),
        errors={**_MEMBER, 404: (Code.WORKSPACE_NOT_FOUND, Code.REQUEST_NOT_FOUND)}),
    _op("GET", "/api/v1/ws/sessions", "listOpenSessions",
        "Sessions with an editing socket open on this node", answer=OpenSessions,
        params=(Param("workspace_id", int, "only this workspace"),)),
    _op("GET", "/api/v1/ws/editing/{session_id}", "openEditingSocket",
        "The editing WebSocket of a session (see the AsyncAPI document)", status=101,
        params=(Param("session_id", str, "the session (es_…)", "path"),),
        schemes=("bearer", "queryToken"),
        errors={403: ("ORIGIN_FORBIDDEN",), 404: (Code.SESSION_NOT_FOUND,)},
        extensions={"x-tidings-asyncapi": "editing"}),
)
