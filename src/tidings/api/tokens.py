"""Access-token management (seed 003 Phases 2-3): create, list, view, update, revoke.

Tokens are shown once, when created; the store keeps only their SHA-256. Managing
tokens needs a token without scopes (as ``/api/v1/auth/login`` issues) or one with
the ``admin`` scope; an admin may manage any user's tokens, others only their own.
Only an admin may grant the ``admin`` scope.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from tidings.api import audit
from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import Operation, Param, describe
from tidings.api.routes import SERVICE, authenticated, int_param
from tidings.auth import Identity
from tidings.auth.revocation import Revocations
from tidings.channels.access import ADMIN, is_admin, valid_scope
from tidings.store.base import Token, now_ms

REVOCATIONS: web.AppKey[Revocations] = web.AppKey("revocations", Revocations)

_NO_NUL = r"\A[^\x00]*\Z"
Name = Annotated[str, msgspec.Meta(max_length=100, pattern=_NO_NUL)]
Scope = Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=_NO_NUL)]
Scopes = Annotated[list[Scope], msgspec.Meta(max_length=50)]
DeviceId = Annotated[str, msgspec.Meta(max_length=200, pattern=_NO_NUL)]
InfoKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_NO_NUL)]
InfoValue = Annotated[str, msgspec.Meta(max_length=500, pattern=_NO_NUL)]
DeviceInfo = Annotated[dict[InfoKey, InfoValue], msgspec.Meta(max_length=20)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86400)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Ids = Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]],
                msgspec.Meta(min_length=1, max_length=1000)]


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/tokens``. ``scopes`` absent: every right of the user."""

    name: Name = ""
    scopes: Scopes | None = None
    expires_in: Seconds | None = None  # default: the token_ttl setting
    device_id: DeviceId | None = None
    device_info: DeviceInfo | None = None
    user_id: Annotated[int, msgspec.Meta(ge=1)] | None = None  # admins: for another user


class TokenUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``PATCH /api/v1/tokens/{id}``: only the fields given change."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    scopes: Scopes | msgspec.UnsetType | None = msgspec.UNSET
    expires_at: Millis | msgspec.UnsetType | None = msgspec.UNSET
    device_id: DeviceId | msgspec.UnsetType | None = msgspec.UNSET
    device_info: DeviceInfo | msgspec.UnsetType = msgspec.UNSET


class BatchRevoke(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/tokens/revoke``."""

    ids: Ids


class TokenView(msgspec.Struct, kw_only=True):
    """A token as the API shows it (never its secret or hash). Times in ms or null;
    ``scopes`` null: every right of the user."""

    id: int
    user_id: int
    name: str
    scopes: list[str] | None
    device_id: str | None
    device_info: dict[str, str] | None
    created_at: int
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None
    status: Literal["active", "expired", "revoked"]


class NewToken(TokenView, kw_only=True):
    """A token just created: its ``token`` (the secret) is shown this once."""

    token: str


class StoredCurrent(TokenView, kw_only=True, tag_field="kind", tag="token"):
    """The stored token a request was made with."""


class JwtCurrent(msgspec.Struct, tag_field="kind", tag="jwt"):
    """A JWT a request was made with (nothing is stored for it)."""

    user_id: int
    device_id: str | None
    scopes: list[str] | None


class TokenList(msgspec.Struct):
    """Tokens, newest first, revoked ones included."""

    tokens: list[TokenView]


class Revoked(msgspec.Struct):
    """The ids revoked by this request (not those revoked before)."""

    revoked: list[int]


def token_view(token: Token) -> dict[str, Any]:
    """A token as the API shows it (never its hash): a :class:`TokenView`."""
    now = now_ms()
    status: Literal["active", "expired", "revoked"] = (
        "revoked" if token.revoked_at is not None
        else "expired" if token.expires_at is not None and token.expires_at <= now
        else "active")
    view = TokenView(id=token.id, user_id=token.user_id, name=token.name,
                     scopes=None if token.scopes is None else list(token.scopes),
                     device_id=token.device_id, device_info=token.device_info,
                     created_at=token.created_at, expires_at=token.expires_at,
                     last_used_at=token.last_used_at, revoked_at=token.revoked_at,
                     status=status)
    out: dict[str, Any] = msgspec.to_builtins(view)
    return out


def _check_scopes(scopes: list[str] | None, me: Identity) -> tuple[str, ...] | None:
    if scopes is None:
        return None
    bad = [s for s in scopes if not valid_scope(s)]
    if bad:
        raise ApiError(422, "INVALID_BODY", f"invalid scope {bad[0]!r}: use admin, "
                       "publish:<pattern> or subscribe:<pattern>")
    if ADMIN in scopes and not is_admin(me.scopes):
        raise ApiError(403, "PERMISSION_DENIED", "only a token with the admin scope may "
                       "grant the admin scope")
    return tuple(dict.fromkeys(scopes))


async def _manager(request: web.Request) -> Identity:
    me = await authenticated(request)
    if me.scopes is not None and not is_admin(me.scopes):
        raise ApiError(403, "PERMISSION_DENIED", "managing tokens needs a token without "
                       "scopes (from login) or one with the admin scope")
    return me


async def _own_token(request: web.Request, me: Identity) -> Token:
    token_id = _path_id(request)
    token = await request.app[SERVICE].store.get_token_by_id(token_id)
    if token is None or (token.user_id != me.user_id
                         and not await audit.is_operator(request, me)):
        raise ApiError(404, "TOKEN_NOT_FOUND", f"no token {token_id}")
    return token


def _path_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or not 0 < len(raw) <= 19:
        raise ApiError(400, "BAD_PARAMETER", "the token id is a positive integer")
    return int(raw)


async def create(request: web.Request) -> web.Response:
    """``POST /api/v1/tokens`` → 201 with the token (shown once) and its view."""
    me = await _manager(request)
    body = await read_json(request, TokenCreate)
    service = request.app[SERVICE]
    owner = me.user_id
    if body.user_id is not None and body.user_id != me.user_id:
        if not await audit.is_operator(request, me):
            raise ApiError(403, "PERMISSION_DENIED",
                           "only an admin may create tokens for other users")
        if await service.store.get_user(body.user_id) is None:
            raise ApiError(404, "USER_NOT_FOUND", f"no user {body.user_id}")
        owner = body.user_id
    scopes = _check_scopes(body.scopes, me)
    ttl = None if body.expires_in is None else int(body.expires_in * 1000)
    secret, row = await service.auth.issue_row(owner, name=body.name, device_id=body.device_id,
                                               ttl_ms=ttl, scopes=scopes,
                                               device_info=body.device_info)
    await audit.record(request, me.user_id, "token.create", f"token:{row.id}", user_id=owner,
                       name=body.name, scopes=None if scopes is None else list(scopes))
    return json_response({"token": secret, **token_view(row)}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    """``GET /api/v1/tokens[?user_id=N]``: the caller's tokens (an admin: anyone's)."""
    me = await _manager(request)
    user_id = int_param(request, "user_id", me.user_id, low=1) or me.user_id
    if user_id != me.user_id and not await audit.is_operator(request, me):
        raise ApiError(403, "PERMISSION_DENIED", "only an admin may list other users' tokens")
    tokens = await request.app[SERVICE].store.list_tokens(user_id)
    return json_response({"tokens": [token_view(t) for t in tokens]})


async def current(request: web.Request) -> web.Response:
    """``GET /api/v1/tokens/current``: the token this request was made with."""
    me = await authenticated(request)
    if me.token_id is None:  # a JWT: nothing stored
        return json_response({"kind": "jwt", "user_id": me.user_id, "device_id": me.device_id,
                              "scopes": None if me.scopes is None else list(me.scopes)})
    token = await request.app[SERVICE].store.get_token_by_id(me.token_id)
    if token is None:  # pragma: no cover - it authenticated this very request
        raise ApiError(404, "TOKEN_NOT_FOUND", "token vanished")
    return json_response({"kind": "token", **token_view(token)})


async def view(request: web.Request) -> web.Response:
    """``GET /api/v1/tokens/{id}``."""
    me = await _manager(request)
    return json_response(token_view(await _own_token(request, me)))


async def update(request: web.Request) -> web.Response:
    """``PATCH /api/v1/tokens/{id}``: change name, scopes, expiry, device."""
    me = await _manager(request)
    token = await _own_token(request, me)
    body = await read_json(request, TokenUpdate)
    changes: dict[str, Any] = {}
    if body.name is not msgspec.UNSET:
        changes["name"] = body.name
    if body.scopes is not msgspec.UNSET:
        changes["scopes"] = _check_scopes(body.scopes, me)
    if body.expires_at is not msgspec.UNSET:
        changes["expires_at"] = body.expires_at
    if body.device_id is not msgspec.UNSET:
        changes["device_id"] = body.device_id
    if body.device_info is not msgspec.UNSET:
        changes["device_info"] = body.device_info
    updated = msgspec.structs.replace(token, **changes)
    await request.app[SERVICE].store.update_token(updated)
    return json_response(token_view(updated))


async def revoke(request: web.Request) -> web.Response:
    """``DELETE /api/v1/tokens/{id}``: revoke; live connections using it close (4403)."""
    me = await _manager(request)
    token = await _own_token(request, me)
    revoked = await request.app[REVOCATIONS].revoke(None, [token.id])
    if revoked:
        await audit.record(request, me.user_id, "token.revoke", f"token:{token.id}",
                           user_id=token.user_id)
    return json_response({"revoked": revoked})


async def revoke_batch(request: web.Request) -> web.Response:
    """``POST /api/v1/tokens/revoke {ids}``: revoke several; ids that are unknown, not
    yours or already revoked are skipped. Answers the ids revoked now."""
    me = await _manager(request)
    body = await read_json(request, BatchRevoke)
    owner = None if await audit.is_operator(request, me) else me.user_id
    revoked = await request.app[REVOCATIONS].revoke(owner, body.ids)
    if revoked:
        await audit.record(request, me.user_id, "token.revoke",
                           ",".join(f"token:{i}" for i in revoked), ids=revoked)
    return json_response({"revoked": revoked})


_TAG = "tokens"
_MANAGE = {403: ("PERMISSION_DENIED",)}
_ONE = {**_MANAGE, 400: ("BAD_PARAMETER",), 404: ("TOKEN_NOT_FOUND",)}
_ID = (Param("id", int, "the token's id", "path"),)
ROUTES = (
    Operation("POST", "/api/v1/tokens", "createToken", "Create an access token", _TAG,
              body=TokenCreate, answer=NewToken, status=201,
              errors={**_MANAGE, 404: ("USER_NOT_FOUND",)},
              description="Managing tokens needs a token without scopes (from login) or "
                          "one with the `admin` scope."),
    Operation("GET", "/api/v1/tokens", "listTokens", "List tokens", _TAG, answer=TokenList,
              params=(Param("user_id", int, "another user's (admins only)"),), errors=_MANAGE),
    Operation("GET", "/api/v1/tokens/current", "getCurrentToken",
              "The token this request used", _TAG, answer=StoredCurrent | JwtCurrent),
    Operation("POST", "/api/v1/tokens/revoke", "revokeTokens", "Revoke several tokens", _TAG,
              body=BatchRevoke, answer=Revoked, errors=_MANAGE),
    Operation("GET", "/api/v1/tokens/{id}", "getToken", "One token", _TAG, params=_ID,
              answer=TokenView, errors=_ONE),
    Operation("PATCH", "/api/v1/tokens/{id}", "updateToken", "Change a token", _TAG,
              params=_ID, body=TokenUpdate, answer=TokenView, errors=_ONE),
    Operation("DELETE", "/api/v1/tokens/{id}", "revokeToken",
              "Revoke a token (its connections close with 4403)", _TAG, params=_ID,
              answer=Revoked, errors=_ONE),
)


def add_token_routes(app: web.Application, revocations: Revocations) -> None:
    """Register ``/api/v1/tokens``."""
    describe(app, ROUTES)
    app[REVOCATIONS] = revocations
    app.router.add_post("/api/v1/tokens", create)
    app.router.add_get("/api/v1/tokens", list_tokens)
    app.router.add_get("/api/v1/tokens/current", current)
    app.router.add_post("/api/v1/tokens/revoke", revoke_batch)
    app.router.add_get("/api/v1/tokens/{id}", view)
    app.router.add_patch("/api/v1/tokens/{id}", update)
    app.router.add_delete("/api/v1/tokens/{id}", revoke)
