"""The user directory a chat needs: a user's id from their name, and names from ids.

``GET /api/v1/users/{username}`` and ``GET /api/v1/users?ids=1,2``, for any
authenticated caller (usernames are not secret in Tidings: they are how people find
each other).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from tidings.api.errors import ApiError, json_response
from tidings.api.openapi import Operation, Param, describe
from tidings.api.routes import SERVICE, UserRef, authenticated

MAX_IDS = 100


class UserList(msgspec.Struct):
    """The users found, in the order asked."""

    users: list[UserRef]


async def user_by_name(request: web.Request) -> web.Response:
    """``{user_id, username}`` of an existing user; 404 ``USER_NOT_FOUND`` otherwise."""
    await authenticated(request)
    name = request.match_info["username"]
    user = await request.app[SERVICE].store.get_user_by_name(name) if len(name) <= 64 else None
    if user is None:
        raise ApiError(404, "USER_NOT_FOUND", f"no user named {name!r}")
    return json_response(UserRef(user.id, user.username))


async def users_by_id(request: web.Request) -> web.Response:
    """``{users: [{user_id, username}]}`` for up to 100 ids; unknown ids are left out."""
    await authenticated(request)
    parts = [x.strip() for x in request.query.get("ids", "").split(",") if x.strip()]
    if not parts:
        raise ApiError(400, "BAD_PARAMETER", "ids is required")
    if len(parts) > MAX_IDS or not all(x.isascii() and x.isdigit() and len(x) <= 18
                                       for x in parts):
        raise ApiError(400, "BAD_PARAMETER", f"ids is a comma-separated list of up to "
                                             f"{MAX_IDS} user ids")
    store = request.app[SERVICE].store
    found = []
    for user_id in dict.fromkeys(int(x) for x in parts):
        user = await store.get_user(user_id)
        if user is not None:
            found.append(UserRef(user.id, user.username))
    return json_response(UserList(found))


ROUTES = (
    Operation("GET", "/api/v1/users", "getUsers", "Names of users by id", "users",
              answer=UserList, params=(
                  Param("ids", str, f"comma-separated user ids (up to {MAX_IDS})",
                        required=True),)),
    Operation("GET", "/api/v1/users/{username}", "getUserByName", "A user by name", "users",
              answer=UserRef, errors={404: ("USER_NOT_FOUND",)}),
)


def add_routes(app: web.Application) -> None:
    """Register the user directory."""
    describe(app, ROUTES)
    app.router.add_get("/api/v1/users", users_by_id)
    app.router.add_get("/api/v1/users/{username}", user_by_name)
