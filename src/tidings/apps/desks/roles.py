"""Who may manage the desk map (issue 15, item 4).

The ``desk_admins`` setting names users; once it names anyone, only they and
tokens with the ``admin`` scope may create, edit and delete desks and the
organisation. Everyone authenticated may still read, occupy, release and reserve.
Left empty (the default) every authenticated user may manage, as before.
"""

from __future__ import annotations

from aiohttp import web

from tidings.api.errors import ApiError
from tidings.api.routes import SERVICE, authenticated
from tidings.auth.tokens import Identity
from tidings.channels.access import is_admin
from tidings.config import Settings


async def username_of(request: web.Request, identity: Identity) -> str:
    """The caller's user name (401 if the user is gone)."""
    user = await request.app[SERVICE].store.get_user(identity.user_id)
    if user is None:
        raise ApiError(401, "UNAUTHORIZED", "unknown user")
    return user.username


def may_manage(settings: Settings, username: str, identity: Identity) -> bool:
    """True if this caller may create, edit and delete desks and the organisation."""
    return not settings.desk_admins or username in settings.desk_admins \
        or is_admin(identity.scopes)


async def require_desk_admin(request: web.Request, settings: Settings) -> Identity:
    """The caller if they may manage the desk map; else 401 or 403 ``DESK_ADMIN_REQUIRED``."""
    identity = await authenticated(request)
    if not settings.desk_admins or is_admin(identity.scopes):
        return identity
    if await username_of(request, identity) not in settings.desk_admins:
        raise ApiError(403, "DESK_ADMIN_REQUIRED",
                       "only desk admins may create, edit or delete desks and the "
                       "organisation (see the desk_admins setting)")
    return identity
