"""JWTs issued and refreshed over HTTP: ``POST /api/v1/auth/token`` and ``/refresh``.

``token`` takes a username and password (as ``/api/v1/auth/login`` does) and answers a
short-lived JWT (``jwt_ttl``) with a refresh token; ``refresh`` trades a refresh token
for a new pair, rotating it (auth/refresh.py). Both need a signing key (``jwt_secret``
or ``jwt_private_key_file``); without one they answer 501 ``JWT_NOT_CONFIGURED``. A
socket renews its credential in-band with ``Refresh`` (hub/credentials.py).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import Operation, describe
from tidings.api.routes import SERVICE, Login
from tidings.auth import AuthError, verify_password
from tidings.auth.refresh import TokenPair
from tidings.channels.access import ADMIN, valid_scope

Scope = Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=r"\A[^\x00]*\Z")]


class TokenRequest(Login, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/auth/token``: ``scopes`` narrows the JWT's rights (absent:
    every right of the user; ``admin`` only for users in ``admin_users``)."""

    scopes: Annotated[list[Scope], msgspec.Meta(max_length=50)] | None = None


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/auth/refresh``."""

    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class TokenAnswer(msgspec.Struct):
    """A JWT (``token``, expiring at ``expires_at``, ms) and the refresh token that renews
    it once (``refresh_token``, until ``refresh_expires_at``)."""

    token: str
    token_type: str
    expires_at: int
    refresh_token: str
    refresh_expires_at: int
    user_id: int


def _answer(pair: TokenPair) -> web.Response:
    return json_response(TokenAnswer(pair.access_token, "Bearer", pair.expires_at,
                                     pair.refresh_token, pair.refresh_expires_at, pair.user_id))


def _configured(request: web.Request) -> None:
    if not request.app[SERVICE].refresh.available:
        raise ApiError(501, "JWT_NOT_CONFIGURED", "this server issues no JWTs: set jwt_secret "
                                                  "or jwt_private_key_file")


async def issue_token(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/token {username, password, device_id?, scopes?}`` → a JWT and
    a refresh token."""
    _configured(request)
    body = await read_json(request, TokenRequest)
    service = request.app[SERVICE]
    user = await service.store.get_user_by_name(body.username)
    if not await verify_password(user.password_hash if user else None, body.password):
        raise ApiError(401, "INVALID_CREDENTIALS", "wrong username or password")
    assert user is not None
    scopes = tuple(body.scopes) if body.scopes is not None else None
    for scope in scopes or ():
        if not valid_scope(scope):
            raise ApiError(400, "INVALID_SCOPE", f"{scope!r} is not admin, publish:<pattern> "
                                                 "or subscribe:<pattern>")
        if scope == ADMIN and user.username not in service.settings.admin_users:
            raise ApiError(403, "FORBIDDEN", "only users in admin_users get the admin scope")
    pair = await service.refresh.issue(user.id, device_id=body.device_id, scopes=scopes)
    return _answer(pair)


async def refresh_token(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/refresh {refresh_token}`` → a new JWT and refresh token; the
    one sent is used up."""
    _configured(request)
    body = await read_json(request, RefreshRequest)
    try:
        pair = await request.app[SERVICE].refresh.refresh(body.refresh_token)
    except AuthError as exc:
        raise ApiError(401, "INVALID_REFRESH_TOKEN", str(exc)) from None
    return _answer(pair)


ROUTES = (
    Operation("POST", "/api/v1/auth/token", "issueToken",
              "Log in: a short-lived JWT and a refresh token", "accounts", auth="none",
              body=TokenRequest, answer=TokenAnswer,
              description="The JWT (`jwt_algorithm`, `jwt_ttl`, with `aud`/`iss` when "
                          "`jwt_audience`/`jwt_issuer` are set) authenticates `/ws`, "
                          "Socket.IO and the HTTP API; renew it before `expires_at` with "
                          "`/api/v1/auth/refresh` or a `Refresh` frame (docs/security.md).",
              errors={400: ("INVALID_SCOPE",), 401: ("INVALID_CREDENTIALS",),
                      403: ("FORBIDDEN",), 501: ("JWT_NOT_CONFIGURED",)}),
    Operation("POST", "/api/v1/auth/refresh", "refreshToken",
              "Trade a refresh token for a new JWT and refresh token", "accounts",
              auth="none", body=RefreshRequest, answer=TokenAnswer,
              description="The refresh token sent is used up. Sending a used one again "
                          "revokes every refresh token of its log-in (a leaked copy).",
              errors={401: ("INVALID_REFRESH_TOKEN",), 501: ("JWT_NOT_CONFIGURED",)}),
)


def add_routes(app: web.Application) -> None:
    """Register the JWT routes."""
    describe(app, ROUTES)
    app.router.add_post("/api/v1/auth/token", issue_token)
    app.router.add_post("/api/v1/auth/refresh", refresh_token)
