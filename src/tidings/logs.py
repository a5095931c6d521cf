"""Logging of a node: text or JSON lines, request and connection ids, the access log.

``log_format = "text"`` writes ``time level logger: message``; ``"json"`` writes one
JSON object a line — ``time``, ``level``, ``logger``, ``message``, and where known
``request_id`` (the HTTP request, also the WebSocket upgrade a connection came in
by), ``conn``, ``user_id`` and ``device_id`` (the WebSocket connection whose task
logged), ``exception`` (a traceback). Everything passes :class:`RedactSecrets`
first, so no token, JWT or URL password reaches either format.

``access_log = true`` adds one ``tidings.access`` record per HTTP request (method,
path, status, duration, bytes, remote) and one when each ``/ws`` connection closes
(close code, duration, frames in and out, user).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tidings.gateway.connection import CURRENT as CONNECTION
from tidings.security import RedactSecrets, redact

if TYPE_CHECKING:
    from tidings.gateway.connection import Connection

access_log = logging.getLogger("tidings.access")

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
"""The id of the HTTP request being handled (inherited by a WebSocket's task)."""
# CONNECTION: the WebSocket connection whose task is running, read when a record is
# formatted, so that a user id learnt at authentication shows from then on.

_GOOD_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HANDLER_NAME = "tidings"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message",
                                                                          "asctime"}


def context_fields() -> dict[str, Any]:
    """The ids of the request and connection this code runs for, where known."""
    fields: dict[str, Any] = {}
    request_id = REQUEST_ID.get()
    if request_id:
        fields["request_id"] = request_id
    conn = CONNECTION.get()
    if conn is not None:
        fields["conn"] = conn.id
        if conn.user_id:
            fields["user_id"] = conn.user_id
        if conn.device_id:
            fields["device_id"] = conn.device_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON: standard fields, context ids, then ``extra=`` fields."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(context_fields())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The plain format, with the ``extra=`` fields of access records as ``k=v``."""

    def format(self, record: logging.LogRecord) -> str:
        """``time level logger: message k=v …``."""
        text = super().format(record)
        extra = [f"{k}={v}" for k, v in vars(record).items()
                 if k not in _STANDARD and not k.startswith("_")]
        return text + (" " + " ".join(extra) if extra else "")


def configure(level: str, log_format: str = "text") -> None:
    """Send every record to stderr in ``log_format``, at ``level`` and above, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format.lower() == "json"
                         else TextFormatter(TEXT_FORMAT))
    handler.addFilter(RedactSecrets())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # ours, from an earlier call; keep the others
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    return given if _GOOD_REQUEST_ID.fullmatch(given) else secrets.token_hex(8)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_middleware(*, access: bool) -> Callable[..., Any]:
    """Middleware giving each request an id (``X-Request-Id``, echoed back) for the
    logs and, with ``access``, writing its access record."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = _request_id(request)
        token = REQUEST_ID.set(request_id)
        started = time.monotonic()
        status, size = 500, 0
        try:
            response = await handler(request)
            status = response.status
            size = response.content_length or 0  # None: streamed (a page, an upgrade)
            if not response.prepared:
                response.headers["X-Request-Id"] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if access:
                access_log.info(
                    "%s %s %d", request.method, request.path, status,
                    extra={"event": "http", "method": request.method,
                           "path": request.path, "status": status,
                           "duration_ms": round((time.monotonic() - started) * 1000, 1),
                           "bytes": size, "remote": request.remote or ""})
            REQUEST_ID.reset(token)

    return middleware


def ws_closed(conn: Connection, now: float) -> None:
    """Write the access record of a ``/ws`` connection that closed."""
    access_log.info(
        "/ws closed %s", conn.close_code,
        extra={"event": "ws_close", "code": conn.close_code,
               "duration_ms": round((now - conn.opened_at) * 1000, 1),
               "frames_in": conn.frames_in, "frames_out": conn.frames_out,
               "remote": conn.remote, "conn": conn.id, "user_id": conn.user_id,
               "device_id": conn.device_id})
