"""The application backend the hook tests run as a separate process.

Its answers follow the request's content, so that each test picks a case:

- connect: device ``refuse`` → refused; ``slow`` → answers after 3 s; ``rewrite`` →
  device ``rewritten``, scopes ``["subscribe:room:*"]`` and data; a token ``app:<id>``
  (the application's own session, unknown to Tidings) → user ``<id>``; else accepted.
- subscribe: a channel containing ``refuse`` / ``slow`` → refused / slow.
- publish: data ``{"cmd": "refuse" | "slow" | "rewrite"}``.
- rpc: method ``echo`` → the data and who called; ``refuse``; ``slow``.
- webhook (``POST /webhook``): the first ``FAIL_FIRST`` tries of each delivery id answer
  500; later ones 200 (each answer after ``WEBHOOK_DELAY`` s, 0 by default).
  Deliveries are kept in arrival order.

Every request must carry a valid ``X-Tidings-Signature`` (secret ``SECRET``), else 401.
``GET /log`` returns what was received; ``POST /reset`` forgets it.
Run: ``python -m tests.hooks.backend_app`` — prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from typing import Any

from aiohttp import web

from tidings.hooks.signing import SIGNATURE_HEADER, verify

SECRET = "backend-secret"
FAIL_FIRST = int(os.environ.get("FAIL_FIRST", "2"))
WEBHOOK_DELAY = float(os.environ.get("WEBHOOK_DELAY", "0"))  # seconds before each answer
_log: list[dict[str, Any]] = []
_webhooks: list[dict[str, Any]] = []
_tries: Counter[str] = Counter()


def _ok(result: dict[str, Any] | None = None) -> web.Response:
    return web.json_response({"result": result or {}})


def _no(message: str) -> web.Response:
    return web.json_response({"error": {"code": "NOPE", "message": message}})


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not verify(SECRET, raw, request.headers.get(SIGNATURE_HEADER, "")):
        raise web.HTTPUnauthorized(text="bad signature")
    body: dict[str, Any] = await request.json()
    _log.append({"path": request.path, "body": body})
    return body


async def connect(request: web.Request) -> web.Response:
    body = await _body(request)
    device, token = body.get("device_id") or "", body["token"]
    if device == "refuse":
        return _no("this device is banned")
    if device == "slow":
        await asyncio.sleep(3)
    if device == "rewrite":
        return _ok({"device_id": "rewritten", "scopes": ["subscribe:room:*"],
                    "data": {"plan": "gold"}})
    if token.startswith("app:"):
        return _ok({"user_id": int(token[4:]), "data": {"via": "app session"}})
    return _ok()


async def subscribe(request: web.Request) -> web.Response:
    body = await _body(request)
    if "refuse" in body["channel"]:
        return _no(f"not in {body['channel']}")
    if "slow" in body["channel"]:
        await asyncio.sleep(3)
    return _ok()


async def publish(request: web.Request) -> web.Response:
    body = await _body(request)
    cmd = body["data"].get("cmd") if isinstance(body["data"], dict) else None
    if cmd == "refuse":
        return _no("no swearing")
    if cmd == "slow":
        await asyncio.sleep(3)
    if cmd == "rewrite":
        return _ok({"data": {"text": "[moderated]", "by": body["user_id"]}})
    return _ok()


async def rpc(request: web.Request) -> web.Response:
    body = await _body(request)
    if body["method"] == "refuse":
        return _no("no such method for you")
    if body["method"] == "slow":
        await asyncio.sleep(3)
    return _ok({"data": {"echo": body["data"], "user_id": body["user_id"]}})


async def webhook(request: web.Request) -> web.Response:
    body = await _body(request)
    delivery = request.headers["X-Tidings-Webhook-Id"]
    if WEBHOOK_DELAY:  # a slow receiver: senders hold their leased rows meanwhile
        await asyncio.sleep(WEBHOOK_DELAY)
    _tries[delivery] += 1
    if _tries[delivery] <= FAIL_FIRST:
        return web.Response(status=500, text="not yet")
    _webhooks.append({"id": delivery, "event": body["event"], "data": body["data"]})
    return web.json_response({})


async def show_log(_request: web.Request) -> web.Response:
    return web.json_response({"requests": _log, "webhooks": _webhooks,
                              "tries": dict(_tries)})


async def reset(_request: web.Request) -> web.Response:
    _log.clear()
    _webhooks.clear()
    _tries.clear()
    return web.json_response({})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/connect", connect)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_post("/publish", publish)
    app.router.add_post("/rpc", rpc)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/log", show_log)
    app.router.add_post("/reset", reset)
    return app


async def main() -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
