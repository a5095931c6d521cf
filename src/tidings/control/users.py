"""The server API's user routes (issue 21), ``admin_users`` or the ``admin`` scope:

- ``GET /api/v1/admin/users?q=`` — find a user by id or exact name (the console's search);
- ``PATCH /api/v1/admin/users/{id}`` ``{username?, password?}``;
- ``DELETE /api/v1/admin/users/{id}`` — revoke its tokens (their sockets close 4403 on
  every node), close its other connections (JWTs: 4000), then delete the account, its
  tokens and device cursors; its messages stay (store/admin.py, docs/api.md).

Each change is written to the audit log; passwords never are.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from tidings.api import audit
from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import Operation, Param, describe
from tidings.api.routes import SERVICE, Password, Username
from tidings.api.tokens import REVOCATIONS
from tidings.auth import hash_password
from tidings.control.routes import CONTROL, user_id_param
from tidings.protocol.codes import CloseCode
from tidings.store.base import Conflict, User


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change; the password is stored hashed (argon2id)."""

    username: Username | None = None
    password: Password | None = None


class AdminUserView(msgspec.Struct):
    """A user as the server API shows it (never its password hash)."""

    user_id: int
    username: str
    created_at: int


class AdminUserList(msgspec.Struct):
    """Answer of ``GET /api/v1/admin/users``."""

    users: list[AdminUserView]


class UserDeleted(msgspec.Struct):
    """Answer of ``DELETE /api/v1/admin/users/{id}``."""

    user_id: int
    tokens_revoked: int
    connections_closed: int
    missing_nodes: list[str]


def _view(user: User) -> AdminUserView:
    return AdminUserView(user.id, user.username, user.created_at)


async def find_users(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/users?q=`` — the user with this id and the one with this name."""
    await audit.admin_user(request)
    q = request.query.get("q", "").strip()
    if not q or len(q) > 64:
        raise ApiError(400, "BAD_PARAMETER", "q is a user id or name (1-64 characters)")
    store = request.app[SERVICE].store
    found: dict[int, User] = {}
    if q.isascii() and q.isdigit() and len(q) <= 18 and (by_id := await store.get_user(int(q))):
        found[by_id.id] = by_id
    if (by_name := await store.get_user_by_name(q)) is not None:
        found[by_name.id] = by_name
    return json_response(AdminUserList([_view(u) for u in found.values()]))


async def update_user(request: web.Request) -> web.Response:
    """``PATCH /api/v1/admin/users/{id}``."""
    admin = await audit.admin_user(request)
    user_id = user_id_param(request)
    body = await read_json(request, UserUpdate)
    if body.username is None and body.password is None:
        raise ApiError(422, "INVALID_BODY", 'give "username", "password" or both')
    store = request.app[SERVICE].store
    hashed = None if body.password is None else await hash_password(body.password)
    try:
        found = await store.update_user(user_id, username=body.username, password_hash=hashed)
    except Conflict:
        raise ApiError(409, "USERNAME_TAKEN", f"username {body.username!r} is taken") from None
    if not found:
        raise ApiError(404, "USER_NOT_FOUND", f"no user {user_id}")
    changed = [name for name, value in (("username", body.username),
                                        ("password", body.password)) if value is not None]
    await audit.record(request, admin, "user.update", f"user:{user_id}", changed=changed,
                       username=body.username)
    user = await store.get_user(user_id)
    if user is None:  # deleted meanwhile
        raise ApiError(404, "USER_NOT_FOUND", f"no user {user_id}")
    return json_response(_view(user))


async def delete_user(request: web.Request) -> web.Response:
    """``DELETE /api/v1/admin/users/{id}``."""
    admin = await audit.admin_user(request)
    user_id = user_id_param(request)
    store = request.app[SERVICE].store
    user = await store.get_user(user_id)
    if user is None:
        raise ApiError(404, "USER_NOT_FOUND", f"no user {user_id}")
    live = [t.id for t in await store.list_tokens(user_id) if t.revoked_at is None]
    revoked = await request.app[REVOCATIONS].revoke(user_id, live) if live else []
    try:
        gathered = await request.app[CONTROL].ask(
            "disconnect", user_id=user_id, conn_id=None, code=int(CloseCode.DISCONNECTED),
            reason="user deleted")
    except OSError as exc:
        raise ApiError(503, "REGISTRY_UNAVAILABLE", str(exc)) from None
    closed = sum(int(a.get("closed", 0)) for a in gathered.answers.values())
    await store.delete_user(user_id)
    await audit.record(request, admin, "user.delete", f"user:{user_id}",
                       username=user.username, tokens_revoked=len(revoked),
                       connections_closed=closed)
    return json_response(UserDeleted(user_id, len(revoked), closed, gathered.missing))


_TAG = "server API"
_ADMIN = {401: ("UNAUTHORIZED",), 403: ("ADMIN_REQUIRED",)}
_ONE = {**_ADMIN, 400: ("BAD_PARAMETER",), 404: ("USER_NOT_FOUND",)}
_USER = (Param("id", int, "the user's id", "path"),)
ROUTES = (
    Operation("GET", "/api/v1/admin/users", "findUsers", "Find a user by id or name", _TAG,
              auth="admin", params=(Param("q", str, "a user id or an exact name",
                                          required=True),),
              answer=AdminUserList, errors={**_ADMIN, 400: ("BAD_PARAMETER",)}),
    Operation("PATCH", "/api/v1/admin/users/{id}", "updateUser",
              "Rename a user or set its password", _TAG, auth="admin", params=_USER,
              body=UserUpdate, answer=AdminUserView,
              errors={**_ONE, 409: ("USERNAME_TAKEN",)},
              description="Its tokens stay valid: revoke them too if the password changed "
                          "because it leaked."),
    Operation("DELETE", "/api/v1/admin/users/{id}", "deleteUser",
              "Delete a user, its tokens and connections (its messages stay)", _TAG,
              auth="admin", params=_USER, answer=UserDeleted,
              errors={**_ONE, 503: ("REGISTRY_UNAVAILABLE",)}),
)


def add_routes(app: web.Application) -> None:
    """Register the server API's user routes (after control/routes.py's)."""
    describe(app, ROUTES)
    app.router.add_get("/api/v1/admin/users", find_users)
    app.router.add_patch("/api/v1/admin/users/{id}", update_user)
    app.router.add_delete("/api/v1/admin/users/{id}", delete_user)
