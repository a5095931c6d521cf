"""The audit log of admin actions (issue 21): :func:`record` writes who did what, when,
on what, and ``GET /api/v1/admin/audit`` reads it (``admin_users`` or the ``admin``
scope). Recorded: every server API action (``user.*``, ``channel.*``), token creation
and revocation (``token.create``, ``token.revoke``) and webhook replays
(``webhook.replay``); see docs/api.md "Audit log"."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from tidings.api.errors import ApiError, json_response
from tidings.api.openapi import Operation, Param, describe
from tidings.api.routes import SERVICE, authenticated, int_param
from tidings.auth import Identity
from tidings.channels.access import is_admin
from tidings.store.admin import NewAudit
from tidings.store.base import User, now_ms

MAX_LIST = 1000
ADMIN_USERS: web.AppKey[list[str]] = web.AppKey("audit_admin_users", list)


class AuditView(msgspec.Struct):
    """One admin action; ``at`` in ms since the epoch."""

    id: int
    at: int
    actor_id: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    remote: str


class AuditList(msgspec.Struct):
    """Answer of ``GET /api/v1/admin/audit``, newest first."""

    entries: list[AuditView]


async def admin_user(request: web.Request) -> User:
    """The caller if they are an admin (``admin_users`` or the ``admin`` scope); else 401
    or 403."""
    identity = await authenticated(request)
    user = await request.app[SERVICE].store.get_user(identity.user_id)
    if user is None:
        raise ApiError(401, "UNAUTHORIZED", "unknown user")
    if user.username not in request.app.get(ADMIN_USERS, []) and not is_admin(identity.scopes):
        raise ApiError(403, "ADMIN_REQUIRED",
                       "this user is not an admin (see the admin_users setting)")
    return user


async def is_operator(request: web.Request, identity: Identity) -> bool:
    """True for a token with the ``admin`` scope, and for an unscoped token (a login) of
    a user in ``admin_users`` (the console's operators)."""
    if is_admin(identity.scopes):
        return True
    if identity.scopes is not None or not request.app.get(ADMIN_USERS):
        return False
    user = await request.app[SERVICE].store.get_user(identity.user_id)
    return user is not None and user.username in request.app[ADMIN_USERS]


async def record(request: web.Request, actor: User | int, action: str, target: str,
                 **details: Any) -> None:
    """Write one entry for an action ``actor`` (a user or its id) took on ``target``."""
    store = request.app[SERVICE].store
    if isinstance(actor, int):
        found = await store.get_user(actor)
        name = found.username if found is not None else ""
        actor_id = actor
    else:
        name, actor_id = actor.username, actor.id
    await store.audit_add(NewAudit(now_ms(), actor_id, name, action, target,
                                   msgspec.json.encode(details).decode(),
                                   request.remote or ""))


async def list_audit(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/audit?action=&limit=&before=``."""
    await admin_user(request)
    limit = int_param(request, "limit", 100, low=1, high=MAX_LIST) or 100
    before = int_param(request, "before", None, low=1)
    action = request.query.get("action") or None
    if action is not None and (len(action) > 64 or not action.isascii()):
        raise ApiError(400, "BAD_PARAMETER", "action is an ASCII name of at most 64 characters")
    entries = await request.app[SERVICE].store.audit_list(limit, before, action)
    return json_response({"entries": [e.to_json() for e in entries]})


ROUTES = (
    Operation("GET", "/api/v1/admin/audit", "listAudit",
              "The audit log of admin actions, newest first", "admin", auth="admin",
              answer=AuditList,
              errors={401: ("UNAUTHORIZED",), 403: ("ADMIN_REQUIRED",),
                      400: ("BAD_PARAMETER",)},
              params=(Param("action", str, "only this action, or those under it "
                                           "(`user` matches `user.delete`)"),
                      Param("limit", int, f"at most this many (1-{MAX_LIST}, 100)"),
                      Param("before", int, "only ids below this one (paging)"))),
)


def add_routes(app: web.Application, admin_users: list[str]) -> None:
    """Register the audit log's route."""
    app[ADMIN_USERS] = list(admin_users)
    describe(app, ROUTES)
    app.router.add_get("/api/v1/admin/audit", list_audit)
