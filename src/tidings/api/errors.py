"""JSON errors for the HTTP API: ``{"error": {"code", "message"}}`` with a 4xx/5xx."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
import msgspec
import redis.exceptions
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tidings.plain_errors import in_words

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BODY_BYTES: web.AppKey[int] = web.AppKey("max_body_bytes", int)
BODY_TIMEOUT: web.AppKey[float] = web.AppKey("body_timeout", float)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# HTTP statuses aiohttp raises itself, and the code our body gives them.
_STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "BODY_TOO_LARGE",
                 415: "UNSUPPORTED_MEDIA_TYPE", 422: "INVALID_BODY", 426: "UPGRADE_REQUIRED",
                 429: "RATE_LIMITED"}

# A database or Redis the node cannot reach, or that did not answer in time (a
# partition, a restart): the request may succeed a moment later, so 503, not 500.
# Narrow on purpose: a constraint violation or a bad statement stays a 500 (a bug).
BACKEND_UNREACHABLE: tuple[type[BaseException], ...] = (
    TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.QueryCanceledError, asyncpg.CannotConnectNowError,
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close  # close the connection after answering
        self.headers = headers  # e.g. Retry-After on a 429


def error_response(status: int, code: str, message: str,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    """The JSON error body, with extra ``headers`` (e.g. ``Allow`` of a 405)."""
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return web.Response(status=status, body=body, content_type="application/json",
                        headers=headers)


def json_response(data: Any, status: int = 200) -> web.Response:
    """Encode ``data`` (structs, dicts, lists) with msgspec."""
    return web.Response(status=status, body=msgspec.json.encode(data),
                        content_type="application/json")


async def read_json(request: web.Request, type_: type[T]) -> T:
    """Decode and validate the request body as ``type_``, or raise a 4xx ApiError."""
    # Refuse a declared size at once, rather than wait for a body that may never come.
    limit = request.app.get(MAX_BODY_BYTES, 1 << 20)
    if (request.content_length or 0) > limit:
        raise ApiError(413, "BODY_TOO_LARGE", f"request body over {limit} bytes")
    try:
        # aiohttp has no body read timeout: without one a client that declares more
        # than it sends would hold its connection and this handler forever.
        async with asyncio.timeout(request.app.get(BODY_TIMEOUT, 60.0)):
            body = await request.read()
    except TimeoutError:
        raise ApiError(408, "BODY_TIMEOUT", "request body incomplete", close=True) from None
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, "BODY_TOO_LARGE", exc.text or "request body too large") from None
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "INVALID_BODY", in_words(exc, type_)) from None
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BAD_JSON", f"body is not valid JSON: {exc}") from None


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; never leak a traceback."""
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.headers)
        if exc.close:  # and skip aiohttp's lingering read of the rest of the body
            response.force_close()
            request.protocol.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "HTTP_ERROR")
        # Keep headers the status requires (Allow on 405); the body is ours.
        kept = {k: v for k, v in exc.headers.items()
                if k.lower() not in ("content-type", "content-length")}
        return error_response(exc.status, code, exc.reason, kept)
    except ConnectionError as exc:  # the client went away mid-request: not our failure
        log.info("%s %s: client disconnected (%s)", request.method, request.path, exc)
        return error_response(400, "CLIENT_GONE", "connection closed by the client")
    except BACKEND_UNREACHABLE as exc:
        why = str(exc) or type(exc).__name__
        log.warning("%s %s: the store or bus did not answer: %s", request.method,
                    request.path, why)
        return error_response(503, "BACKEND_UNAVAILABLE",
                              f"the store or bus did not answer ({why}); retry shortly",
                              {"Retry-After": "1"})
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "INTERNAL_ERROR", "internal error")


class _ParserErrorsAsOneLine(logging.Filter):
    """aiohttp logs every request its parser refuses (bad request line, oversized
    header, smuggling attempt) at ERROR with a traceback; anyone can send those, so
    they become one WARNING line and cannot flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: {exc.code} {exc.message}"
            record.args = ()
            record.exc_info = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_parser_errors() -> None:
    """Install the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ParserErrorsAsOneLine) for f in logger.filters):
        logger.addFilter(_ParserErrorsAsOneLine())
