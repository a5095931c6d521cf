"""The user directory a chat needs: a user's id from their name, and names from ids.

``GET /api/v1/users/{username}`` and ``GET /api/v1/users?ids=1,2``, for any
authenticated caller (usernames are not secret in Tidings: they are how people find
each other).
"""

from __future__ import annotations

from aiohttp import web

from tidings.api.errors import ApiError, json_response
from tidings.api.routes import SERVICE, authenticated

MAX_IDS = 100


async def user_by_name(request: web.Request) -> web.Response:
    """``{user_id, username}`` of an existing user; 404 ``USER_NOT_FOUND`` otherwise."""
    await authenticated(request)
    name = request.match_info["username"]
    user = await request.app[SERVICE].store.get_user_by_name(name) if len(name) <= 64 else None
    if user is None:
        raise ApiError(404, "USER_NOT_FOUND", f"no user named {name!r}")
    return json_response({"user_id": user.id, "username": user.username})


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
            found.append({"user_id": user.id, "username": user.username})
    return json_response({"users": found})


def add_routes(app: web.Application) -> None:
    """Register the user directory."""
    app.router.add_get("/api/v1/users", users_by_id)
    app.router.add_get("/api/v1/users/{username}", user_by_name)
