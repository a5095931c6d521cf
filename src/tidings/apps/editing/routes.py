"""HTTP routes of collaborative editing, under the paths seed 002 names.

JSON in and out, ``Authorization: Bearer <token>`` on every route. Errors are the
API's ``{"error": {"code", "message"}}``, with extra fields where the caller can use
them (``pending_request_id`` on ``TAKEOVER_PENDING``). Reference: docs/editing.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from aiohttp import web

from tidings.api.asyncapi import describe_socket
from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import describe
from tidings.api.routes import authenticated, int_param
from tidings.apps.editing.sockets import SESSION_ID
from tidings.apps.editing.workspaces import EditingError
from tidings.protocol.codes import EditingErrorCode as Code
from tidings.store.base import now_ms

if TYPE_CHECKING:
    from tidings.apps.editing.app import EditingApp

_ID = re.compile(r"[0-9]{1,19}\Z")
_MAX_ID = 2**63 - 1

SessionId = Annotated[str, msgspec.Meta(pattern=SESSION_ID.pattern.replace(r"\Z", "$"),
                                        max_length=70)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\A[^\x00]*\Z")]


class WorkspaceBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/v1/workspaces``."""

    name: Name


class MemberBody(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /api/v1/workspaces/{id}/members/{user_id}``."""

    role: Literal["editor", "viewer"]


class SessionBody(msgspec.Struct, forbid_unknown_fields=True):
    """Heartbeat and end: which session."""

    session_id: SessionId


UserIdText = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,19}$")]


class TakeoverRequestBody(msgspec.Struct, forbid_unknown_fields=True):
    """``takeover-request``: the asking session, and optionally the editor it saw.

    ``requester_user_id`` and ``requester_name`` are seed 002's ``RequestTakeover``
    parameters: the id (an integer, or the seed's string of digits) must be the
    token's user; the name is shown to the editor as the requester's display name.
    """

    requester_session_id: SessionId
    target_session_id: SessionId | None = None
    requester_user_id: Annotated[int, msgspec.Meta(ge=1, le=_MAX_ID)] | UserIdText | None = None
    requester_name: Name | None = None


class TakeoverResponseBody(msgspec.Struct, forbid_unknown_fields=True):
    """``takeover-response``: the editor's session answers a request. Seed 002's
    ``RespondToTakeover(requestID, approved)`` omits ``session_id``: the caller's
    one session that can answer is meant (409 when there is not exactly one)."""

    request_id: Annotated[int, msgspec.Meta(ge=1, le=_MAX_ID)]
    approved: bool
    session_id: SessionId | None = None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _details(handler: Handler) -> Handler:
    """Answer an :class:`EditingError` with its extra fields in the error body."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except EditingError as exc:
            return json_response({"error": {"code": exc.code, "message": exc.message,
                                            **exc.details}}, status=exc.status)
    return wrapped


def _path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not _ID.match(raw) or not 0 < int(raw) <= _MAX_ID:
        raise ApiError(400, "BAD_PARAMETER", f"{name} must be a positive integer")
    return int(raw)


def _target(request: web.Request) -> tuple[int, int]:
    return _path_id(request, "id"), _path_id(request, "resource_id")


class EditingRoutes:
    """The handlers, bound to one node's :class:`EditingApp`."""

    def __init__(self, editing: EditingApp) -> None:
        self.editing = editing
        self.service = editing.service

    # workspaces

    async def create_workspace(self, request: web.Request) -> web.Response:
        """``POST /api/v1/workspaces {name}`` → 201, the caller is its owner."""
        me = await authenticated(request)
        body = await read_json(request, WorkspaceBody)
        return json_response(await self.editing.workspaces.create(me.user_id, body.name),
                             status=201)

    async def list_workspaces(self, request: web.Request) -> web.Response:
        """``GET /api/v1/workspaces``: the caller's workspaces and role in each."""
        me = await authenticated(request)
        return json_response({"workspaces": await self.editing.workspaces.mine(me.user_id)})

    async def members(self, request: web.Request) -> web.Response:
        """``GET /api/v1/workspaces/{id}/members``."""
        me = await authenticated(request)
        rows = await self.editing.workspaces.members(me.user_id, _path_id(request, "id"))
        return json_response({"members": rows})

    async def set_member(self, request: web.Request) -> web.Response:
        """``PUT /api/v1/workspaces/{id}/members/{user_id} {role}``: owner only."""
        me = await authenticated(request)
        body = await read_json(request, MemberBody)
        row = await self.editing.workspaces.set_member(
            me.user_id, _path_id(request, "id"), _path_id(request, "user_id"), body.role)
        return json_response(row)

    # editing sessions

    async def start(self, request: web.Request) -> web.Response:
        """``POST …/editing/start`` → 201 ``{session_id, editing, editor}``."""
        me = await authenticated(request)
        workspace_id, resource_id = _target(request)
        result = await self.service.start(me.user_id, workspace_id, resource_id)
        return json_response({
            "session_id": result.session.session_id, "editing": result.editing,
            "editor": result.editor.to_json(me.user_id) if result.editor else None,
            "heartbeat_interval_ms": round(self.editing.settings.editing_session_ttl * 1000 / 3),
        }, status=201)

    async def heartbeat(self, request: web.Request) -> web.Response:
        """``POST …/editing/heartbeat {session_id}`` → ``{editing, editor}``."""
        me = await authenticated(request)
        body = await read_json(request, SessionBody)
        editor = await self.service.heartbeat(me.user_id, *_target(request), body.session_id)
        return json_response({
            "editing": editor is not None and editor.session_id == body.session_id,
            "editor": editor.to_json(me.user_id) if editor else None})

    async def end(self, request: web.Request) -> web.Response:
        """``POST …/editing/end {session_id}`` → ``{ended, was_editing}``."""
        me = await authenticated(request)
        body = await read_json(request, SessionBody)
        was_editing = await self.service.end(me.user_id, *_target(request), body.session_id)
        return json_response({"ended": True, "was_editing": was_editing})

    async def status(self, request: web.Request) -> web.Response:
        """``GET …/editing/status`` → ``{editor, pending_request}`` (viewers too)."""
        me = await authenticated(request)
        editor, pending = await self.service.status(me.user_id, *_target(request))
        return json_response({
            "editor": editor.to_json(me.user_id) if editor else None,
            "pending_request": pending.to_json(now_ms()) if pending else None})

    # takeover

    async def takeover_request(self, request: web.Request) -> web.Response:
        """``POST …/editing/takeover-request`` → 201 ``{request}``."""
        me = await authenticated(request)
        body = await read_json(request, TakeoverRequestBody)
        claimed = body.requester_user_id
        if claimed is not None and int(claimed) != me.user_id:
            raise EditingError(403, Code.REQUESTER_MISMATCH,
                               f"requester_user_id {claimed} is not the token's user "
                               f"({me.user_id})")
        made = await self.service.request_takeover(me.user_id, *_target(request),
                                                   body.requester_session_id,
                                                   body.target_session_id,
                                                   body.requester_name)
        return json_response({"request": made.to_json(now_ms())}, status=201)

    async def takeover_response(self, request: web.Request) -> web.Response:
        """``POST …/editing/takeover-response`` → ``{request}``."""
        me = await authenticated(request)
        body = await read_json(request, TakeoverResponseBody)
        answered = await self.service.respond(me.user_id, *_target(request), body.request_id,
                                              body.approved, body.session_id)
        return json_response({"request": answered.to_json(now_ms())})

    async def pending_requests(self, request: web.Request) -> web.Response:
        """``GET …/editing/pending-requests?session_id=`` → ``{requests}``."""
        me = await authenticated(request)
        # target_session_id: the name of GetPendingRequests' parameter in seed 002
        session_id = request.query.get("session_id",
                                       request.query.get("target_session_id", ""))
        if not SESSION_ID.match(session_id):
            raise ApiError(400, "BAD_PARAMETER",
                           "session_id (or target_session_id) is required (es_…)")
        rows = await self.service.pending_requests(me.user_id, *_target(request), session_id)
        now = now_ms()
        return json_response({"requests": [r.to_json(now) for r in rows]})

    async def request_status(self, request: web.Request) -> web.Response:
        """``GET …/editing/request-status/{request_id}`` → ``{request}``."""
        me = await authenticated(request)
        found = await self.service.request_status(me.user_id, *_target(request),
                                                  _path_id(request, "request_id"))
        return json_response({"request": found.to_json(now_ms())})

    # sockets

    async def sessions(self, request: web.Request) -> web.Response:
        """``GET /api/v1/ws/sessions``: sessions with an editing socket open on this node,
        in the caller's workspaces (``?workspace_id=`` narrows)."""
        me = await authenticated(request)
        mine = {w["id"] for w in await self.editing.workspaces.mine(me.user_id)}
        only = int_param(request, "workspace_id", low=1)
        if only is not None:
            mine &= {only}
        return json_response({"sessions": self.editing.sockets.listing(mine)})


def add_routes(app: web.Application, editing: EditingApp) -> None:
    """Register the editing routes on the node's app, and their description."""
    # Imported here: the descriptions import this module's bodies.
    from tidings.apps.editing.asyncapi import EDITING_SOCKET
    from tidings.apps.editing.openapi import ROUTES

    describe(app, ROUTES)
    describe_socket(app, EDITING_SOCKET)
    r = EditingRoutes(editing)
    base = "/api/v1/workspaces/{id}/resources/{resource_id}/editing"
    routes: list[tuple[str, str, Any]] = [
        ("POST", "/api/v1/workspaces", r.create_workspace),
        ("GET", "/api/v1/workspaces", r.list_workspaces),
        ("GET", "/api/v1/workspaces/{id}/members", r.members),
        ("PUT", "/api/v1/workspaces/{id}/members/{user_id}", r.set_member),
        ("POST", base + "/start", r.start),
        ("POST", base + "/heartbeat", r.heartbeat),
        ("POST", base + "/end", r.end),
        ("GET", base + "/status", r.status),
        ("POST", base + "/takeover-request", r.takeover_request),
        ("POST", base + "/takeover-response", r.takeover_response),
        ("GET", base + "/pending-requests", r.pending_requests),
        ("GET", base + "/request-status/{request_id}", r.request_status),
        ("GET", "/api/v1/ws/sessions", r.sessions),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _details(handler))
    app.router.add_get("/api/v1/ws/editing/{session_id}", _details(editing.sockets.handle))
