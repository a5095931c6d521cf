"""An application backend for Tidings' hooks and webhooks (docs/integration.md).

Run it, then a node pointing at it (see README.md):

    python examples/backend/app.py --port 9000 --secret change-me
    tidings serve --config examples/backend/tidings.toml

Its rules, one per hook:

- connect: users in BANNED are refused; a client may also connect with this app's own
  session (``MsgAuth.token = "session:<id>"``, see SESSIONS) instead of a Tidings token;
  everyone gets a message of the day in ``MsgAuthRsp.data``.
- subscribe: ``room:staff`` is for STAFF only.
- publish: words in BLOCKED are starred out (the stored data is rewritten); an empty
  ``text`` is refused.
- rpc: ``time`` (the server's clock) and ``add`` (``{"a": 1, "b": 2}`` -> 3).
- webhook: every event is printed once (deliveries are at least once: the id dedups).

Only aiohttp is needed; the signature check is written out (no Tidings import), as an
application in another language would write it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
from typing import Any

from aiohttp import web

BANNED = {666}
STAFF = {1}
SESSIONS = {"session:demo": 1}  # this app's own sessions -> Tidings user ids
BLOCKED = ("darn", "heck")
SECRET = web.AppKey("secret", str)
SEEN = web.AppKey("seen", set[str])


def signed(secret: str, body: bytes, header: str, tolerance: float = 300) -> bool:
    """Check ``X-Tidings-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if not parts.get("t", "").isdigit() or abs(time.time() - int(parts["t"])) > tolerance:
        return False
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts.get("v1", ""))


async def read(request: web.Request) -> dict[str, Any]:
    """The request's JSON, if Tidings signed it (else 401: Tidings counts a failure)."""
    body = await request.read()
    if not signed(request.app[SECRET], body, request.headers.get("X-Tidings-Signature", "")):
        raise web.HTTPUnauthorized(text="bad signature")
    data: dict[str, Any] = json.loads(body)
    return data


def accept(result: dict[str, Any] | None = None) -> web.Response:
    return web.json_response({"result": result or {}})


def refuse(message: str) -> web.Response:
    return web.json_response({"error": {"message": message}})


async def connect(request: web.Request) -> web.Response:
    req = await read(request)
    user_id = req["user_id"] or SESSIONS.get(req["token"], 0)  # 0: Tidings did not know it
    if not user_id:
        return refuse("unknown session")
    if user_id in BANNED:
        return refuse("you are banned")
    return accept({"user_id": user_id,
                   "data": {"motd": f"welcome, user {user_id}, from {req['remote']}"}})


async def subscribe(request: web.Request) -> web.Response:
    req = await read(request)
    if req["channel"].startswith("room:staff") and req["user_id"] not in STAFF:
        return refuse("staff only")
    return accept()


async def publish(request: web.Request) -> web.Response:
    req = await read(request)
    data = req["data"]
    if not isinstance(data, dict) or not str(data.get("text", "")).strip():
        return refuse("send {text: ...}")
    text = str(data["text"])
    for word in BLOCKED:
        text = text.replace(word, "*" * len(word))
    return accept({"data": {**data, "text": text}})


async def rpc(request: web.Request) -> web.Response:
    req = await read(request)
    if req["method"] == "time":
        return accept({"data": {"now": time.time()}})
    if req["method"] == "add":
        args = req["data"] or {}
        return accept({"data": args.get("a", 0) + args.get("b", 0)})
    return refuse(f"no method {req['method']!r}")


async def webhook(request: web.Request) -> web.Response:
    req = await read(request)
    delivery = request.headers["X-Tidings-Webhook-Id"]
    if delivery not in request.app[SEEN]:  # at least once: a retry may repeat one
        request.app[SEEN].add(delivery)
        print(f"webhook {delivery}: {req['event']} {json.dumps(req['data'])}", flush=True)
    return web.json_response({})


def make_app(secret: str) -> web.Application:
    app = web.Application()
    app[SECRET] = secret
    app[SEEN] = set()
    for name, handler in (("connect", connect), ("subscribe", subscribe),
                          ("publish", publish), ("rpc", rpc), ("webhook", webhook)):
        app.router.add_post(f"/tidings/{name}", handler)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", default="change-me")
    args = parser.parse_args()
    web.run_app(make_app(args.secret), host="127.0.0.1", port=args.port)
