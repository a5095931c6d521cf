"""The outbox over HTTP, for operators (``admin_users`` or the ``admin`` scope):

- ``GET /api/v1/admin/webhooks?state=dead&limit=100&before=ID`` — rows, newest first.
- ``POST /api/v1/admin/webhooks/replay`` with ``{"ids": [..]}`` or ``{"dead": true}`` —
  send again (dead or delivered rows become pending, tries reset); answers
  ``{"replayed": n}``.

Both answer 404 ``WEBHOOKS_OFF`` when the store keeps no outbox (Redis).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from aiohttp import web

from tidings.api import audit
from tidings.api.audit import admin_user
from tidings.api.errors import ApiError, json_response, read_json
from tidings.api.openapi import Operation, Param, describe
from tidings.api.routes import SERVICE, int_param
from tidings.store.base import now_ms
from tidings.store.outbox import STATES, Outbox
from tidings.web.admin import require_admin

MAX_LIST = 1000


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /api/v1/admin/webhooks/replay``: ``ids``, or ``dead: true``."""

    ids: Annotated[list[Annotated[int, msgspec.Meta(ge=1)]],
                   msgspec.Meta(max_length=MAX_LIST)] | None = None
    dead: bool = False


class WebhookView(msgspec.Struct):
    """One webhook as the admin API shows it (``data`` decoded; times in ms)."""

    id: int
    event: str
    data: Any
    created_at: int
    state: str
    attempts: int
    next_at: int
    last_error: str
    delivered_at: int | None


class WebhookList(msgspec.Struct):
    """Answer of ``GET /api/v1/admin/webhooks``."""

    webhooks: list[WebhookView]


class Replayed(msgspec.Struct):
    """Answer of ``POST /api/v1/admin/webhooks/replay``."""

    replayed: int


_ADMIN_ERRORS = {401: ("UNAUTHORIZED",), 403: ("ADMIN_REQUIRED",), 404: ("WEBHOOKS_OFF",)}
ROUTES = (
    Operation("GET", "/api/v1/admin/webhooks", "listWebhooks",
              "Webhooks of the outbox, newest first", "admin", auth="admin",
              answer=WebhookList, errors={**_ADMIN_ERRORS, 422: ("INVALID_QUERY",)},
              params=(Param("state", str, "pending, delivered or dead"),
                      Param("limit", int, f"at most this many (1-{MAX_LIST}, 100)"),
                      Param("before", int, "only ids below this one (paging)"))),
    Operation("POST", "/api/v1/admin/webhooks/replay", "replayWebhooks",
              "Send webhooks again (by id, or every dead one)", "admin", auth="admin",
              body=ReplayRequest, answer=Replayed, errors=_ADMIN_ERRORS),
)


def _outbox(request: web.Request) -> Outbox:
    store = request.app[SERVICE].store
    if not isinstance(store, Outbox):
        raise ApiError(404, "WEBHOOKS_OFF", "this store keeps no webhook outbox (Redis)")
    return store


async def list_webhooks(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/webhooks``."""
    await require_admin(request)
    outbox = _outbox(request)
    state = request.query.get("state") or None
    if state is not None and state not in STATES:
        raise ApiError(422, "INVALID_QUERY", f"state must be one of {', '.join(STATES)}")
    limit = int_param(request, "limit", 100, low=1, high=MAX_LIST) or 100
    before = int_param(request, "before", None, low=1)
    rows = await outbox.outbox_list(state, limit, before)
    return json_response({"webhooks": [r.to_json() for r in rows]})


async def replay_webhooks(request: web.Request) -> web.Response:
    """``POST /api/v1/admin/webhooks/replay``."""
    admin = await admin_user(request)
    outbox = _outbox(request)
    body = await read_json(request, ReplayRequest)
    if (body.ids is None) == (not body.dead):
        raise ApiError(422, "INVALID_BODY", 'give either "ids" or "dead": true')
    replayed = await outbox.outbox_replay(body.ids, now_ms())
    await audit.record(request, admin, "webhook.replay",
                       "webhooks:dead" if body.dead else "webhooks", ids=body.ids,
                       replayed=replayed)
    for wake in request.app[WAKE]:
        wake()
    return json_response({"replayed": replayed})


WAKE = web.AppKey("webhook_wake", list[Callable[[], None]])
"""Called after a replay: this node's sender looks at the outbox at once."""


def add_routes(app: web.Application) -> None:
    """Register the webhook admin routes."""
    app[WAKE] = []
    describe(app, ROUTES)
    app.router.add_get("/api/v1/admin/webhooks", list_webhooks)
    app.router.add_post("/api/v1/admin/webhooks/replay", replay_webhooks)
