"""HTTP API of the core: accounts, history, presence, health and metrics."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Coroutine
from typing import Annotated, Any, Literal, cast

import msgspec
from aiohttp import web

from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import Operation, Param, describe
from tidings.api.ratelimit import RATE_LIMITER
from tidings.auth import AuthError, Identity, hash_password, verify_password
from tidings.hub.chat import ChatService
from tidings.hub.hub import to_wire
from tidings.protocol.messages import Message
from tidings.store.base import Conflict

HEALTH_TIMEOUT = 2.0
"""Seconds the store has to answer the health check: a store cut off by the network
does not refuse, it stays silent, and the check must say so rather than hang."""

# \Z, not $: "$" also matches before a trailing newline, which would admit "alice\n".
Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\w.@-]+\Z")]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]


class Registration(msgspec.Struct, forbid_unknown_fields=True):
    """Body of register."""

    username: Username
    password: Password


class Login(Registration, forbid_unknown_fields=True):
    """Body of login: the token is issued for ``device_id`` when given."""

    device_id: Annotated[str, msgspec.Meta(max_length=200, pattern=r"\A[^\x00]*\Z")] | None = None


class UserRef(msgspec.Struct):
    """A user: id and name."""

    user_id: int
    username: str


class LoginAnswer(msgspec.Struct):
    """A new token (``tdg_…``) and when it expires (ms since the epoch)."""

    token: str
    user_id: int
    expires_at: int


class History(msgspec.Struct):
    """A page of history, newest first; ``next_before`` pages on (null: last page)."""

    messages: list[Message]
    next_before: int | None


Visibility = Literal["online", "away", "offline", "unknown"]


class UserStatus(msgspec.Struct):
    """``online``, ``away`` or ``offline`` for yourself and peers, ``unknown`` else."""

    user_id: int
    status: Visibility


class PresenceList(msgspec.Struct):
    """Statuses, one per id asked."""

    presence: list[UserStatus]


class Health(msgspec.Struct):
    """``status`` ``ok`` or ``degraded``; ``store`` and ``bus`` ``ok`` or ``error: …``."""

    status: Literal["ok", "degraded"]
    uptime_seconds: float
    connections: int
    bus: str
    store: str


_INTEGER = re.compile(r"-?[0-9]{1,19}\Z")

SERVICE: web.AppKey[ChatService] = web.AppKey("service", ChatService)
STARTED: web.AppKey[float] = web.AppKey("started", float)


async def authenticated(request: web.Request) -> Identity:
    """The caller named by ``Authorization: Bearer <token>`` or ``X-API-Token: <token>``,
    or 401; 429 when the token is over its rate limit."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = request.headers.get("X-API-Token", "")
    if not token.strip():
        raise ApiError(401, "UNAUTHORIZED",
                       "send Authorization: Bearer <token> or X-API-Token: <token>")
    try:
        identity = await request.app[SERVICE].auth.verify(token.strip())
    except AuthError as exc:
        raise ApiError(401, "UNAUTHORIZED", str(exc)) from None
    limiter = request.app.get(RATE_LIMITER)
    if limiter is not None:
        limiter.check(f"t{identity.token_id}" if identity.token_id else f"u{identity.user_id}")
    return identity


def int_param(request: web.Request, name: str, default: int | None = None, *,
              low: int = 0, high: int = 2**63 - 1) -> int | None:
    """A query parameter as a bounded integer, or 400."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.match(raw):  # not int(): it also takes "1_0", " 1" and non-ASCII digits
        raise ApiError(400, "BAD_PARAMETER", f"{name} must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, "BAD_PARAMETER", f"{name} must be in [{low}, {high}]")
    return value


async def register(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/register {username, password}`` → 201 ``{user_id, username}``."""
    body = await read_json(request, Registration)
    store = request.app[SERVICE].store
    try:
        user = await store.create_user(body.username, await hash_password(body.password))
    except Conflict:
        raise ApiError(409, "USERNAME_TAKEN", f"username {body.username!r} is taken") from None
    return json_response(UserRef(user.id, user.username), status=201)


async def login(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/login {username, password, device_id?}`` → ``{token, user_id,
    expires_at}``."""
    body = await read_json(request, Login)
    service = request.app[SERVICE]
    user = await service.store.get_user_by_name(body.username)
    if not await verify_password(user.password_hash if user else None, body.password):
        raise ApiError(401, "INVALID_CREDENTIALS", "wrong username or password")
    assert user is not None
    token, expires_at = await service.auth.issue(user.id, name="login", device_id=body.device_id)
    return json_response(LoginAnswer(token, user.id, expires_at))


async def messages(request: web.Request) -> web.Response:
    """``GET /api/v1/messages?peer=ID&before=ID&limit=N``: history with one peer, newest
    first; page on with ``before`` = the last id received."""
    me = await authenticated(request)
    peer = int_param(request, "peer", low=1)
    if peer is None:
        raise ApiError(400, "BAD_PARAMETER", "peer is required")
    before = int_param(request, "before", low=1)
    limit = int_param(request, "limit", 50, low=1, high=500)
    assert limit is not None
    rows = await request.app[SERVICE].store.history(me.user_id, peer, before, limit)
    return json_response(History([to_wire(m) for m in rows],
                                 rows[-1].id if len(rows) == limit else None))


async def presence(request: web.Request) -> web.Response:
    """``GET /api/v1/presence?user_ids=1,2``: statuses of yourself and your peers."""
    me = await authenticated(request)
    raw = request.query.get("user_ids", "")
    parts = [x.strip() for x in raw.split(",") if x.strip()][:1000]
    if not all(_INTEGER.match(x) for x in parts):
        raise ApiError(400, "BAD_PARAMETER", "user_ids is a comma-separated list of ids")
    ids = [int(x) for x in parts]
    if not ids:
        raise ApiError(400, "BAD_PARAMETER", "user_ids is required")
    statuses = await request.app[SERVICE].presence.visible_to(me.user_id, ids)
    return json_response(PresenceList([UserStatus(u, cast(Visibility, s))
                                       for u, s in statuses.items()]))


async def health(request: web.Request) -> web.Response:
    """``GET /api/health``: 200 if the store answers (within ``HEALTH_TIMEOUT``) and the
    bus is connected, else 503."""
    service = request.app[SERVICE]
    body = Health("ok", round(time.monotonic() - request.app[STARTED], 3),
                  sum(1 for _ in service.hub.all_connections()), service.bus.health(), "ok")
    try:
        await _within(service.store.ping(), HEALTH_TIMEOUT)
    except Exception as exc:
        why = f"no answer within {HEALTH_TIMEOUT:g} s" if isinstance(exc, TimeoutError) \
            else str(exc) or type(exc).__name__
        body.status, body.store = "degraded", f"error: {why}"
        await service.store.refresh()
        return json_response(body, status=503)
    if body.bus != "ok":  # this node cannot reach the others: send clients elsewhere
        body.status = "degraded"
        return json_response(body, status=503)
    return json_response(body)


async def _within(step: Coroutine[Any, Any, None], seconds: float) -> None:
    """Run ``step``; raise TimeoutError after ``seconds`` without waiting for its
    cancellation to finish (asyncpg cancels a query over a new connection, which a
    partitioned network holds as long as it lasts)."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise TimeoutError
    task.result()


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format."""
    data = request.app[SERVICE].metrics.render()
    return web.Response(body=data, content_type="text/plain", charset="utf-8")


_CORE = "core"
ROUTES = (
    Operation("POST", "/api/v1/auth/register", "register", "Create an account", "accounts",
              auth="none", body=Registration, answer=UserRef, status=201,
              errors={409: ("USERNAME_TAKEN",)}),
    Operation("POST", "/api/v1/auth/login", "login", "Log in: a new token", "accounts",
              auth="none", body=Login, answer=LoginAnswer,
              errors={401: ("INVALID_CREDENTIALS",)}),
    Operation("GET", "/api/v1/messages", "getMessages", "Chat history with one peer",
              "messages", answer=History, params=(
                  Param("peer", int, "the other user's id", required=True),
                  Param("before", int, "only ids below this one (the last id received)"),
                  Param("limit", int, "1-500, default 50"))),
    Operation("GET", "/api/v1/presence", "getPresence", "Statuses of users", "presence",
              answer=PresenceList, params=(
                  Param("user_ids", str, "comma-separated user ids (up to 1000)",
                        required=True),)),
    Operation("GET", "/api/health", "getHealth", "Health of this node (503 if degraded)",
              _CORE, auth="none", answer=Health, also=(503,),
              description="503 with the same body when the store or the bus is down.",
              extensions={"x-tidings-path": "unversioned, as load balancers probe it"}),
    Operation("GET", "/metrics", "getMetrics", "Prometheus metrics", _CORE, auth="none",
              media="text/plain",
              extensions={"x-tidings-path": "unversioned: Prometheus' conventional path"}),
)


def add_routes(app: web.Application) -> None:
    """Register the core routes."""
    describe(app, ROUTES)
    app.router.add_post("/api/v1/auth/register", register)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_get("/api/v1/messages", messages)
    app.router.add_get("/api/v1/presence", presence)
    app.router.add_get("/api/health", health)
    app.router.add_get("/metrics", metrics)
