"""The JSON error middleware, called directly with mocked requests."""

from __future__ import annotations

import json

import asyncpg
import pytest
import redis.exceptions
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from tidings.api.errors import ApiError, error_response, errors_middleware


async def run(exc: BaseException) -> web.StreamResponse:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise exc

    return await errors_middleware(make_mocked_request("GET", "/x"), handler)


def body(response: web.StreamResponse) -> dict[str, object]:
    assert isinstance(response, web.Response) and response.body is not None
    assert response.content_type == "application/json"
    return json.loads(response.body)


async def test_a_successful_response_passes_through():
    ok = web.Response(text="fine")

    async def handler(request: web.Request) -> web.StreamResponse:
        return ok

    assert await errors_middleware(make_mocked_request("GET", "/x"), handler) is ok


async def test_an_api_error_becomes_its_json_body():
    response = await run(ApiError(418, "TEAPOT", "short and stout"))
    assert response.status == 418
    assert body(response) == {"error": {"code": "TEAPOT", "message": "short and stout"}}


async def test_redirects_are_not_turned_into_errors():
    with pytest.raises(web.HTTPFound):
        await run(web.HTTPFound("/elsewhere"))


@pytest.mark.parametrize("exc,code", [
    (web.HTTPNotFound(), "NOT_FOUND"),
    (web.HTTPUnsupportedMediaType(), "UNSUPPORTED_MEDIA_TYPE"),
    (web.HTTPTooManyRequests(), "RATE_LIMITED"),
    (web.HTTPGone(), "HTTP_ERROR"),
    (web.HTTPServiceUnavailable(), "HTTP_ERROR"),
])
async def test_aiohttp_errors_get_a_json_body_with_a_code(exc, code):
    response = await run(exc)
    assert response.status == exc.status
    assert body(response) == {"error": {"code": code, "message": exc.reason}}


async def test_a_405_keeps_its_allow_header_and_gets_a_json_body():
    response = await run(web.HTTPMethodNotAllowed("PUT", ["GET", "POST"]))
    assert response.status == 405 and response.headers["Allow"] == "GET,POST"
    assert body(response)["error"] == {"code": "METHOD_NOT_ALLOWED",
                                       "message": "Method Not Allowed"}


async def test_an_unexpected_exception_is_a_500_without_details(caplog):
    response = await run(KeyError("internal detail"))
    assert response.status == 500
    assert body(response) == {"error": {"code": "INTERNAL_ERROR", "message": "internal error"}}
    assert "GET /x failed" in caplog.text and "internal detail" in caplog.text


def test_error_response_adds_extra_headers():
    response = error_response(429, "RATE_LIMITED", "slow down", {"Retry-After": "3"})
    assert response.headers["Retry-After"] == "3"
    assert body(response)["error"]["code"] == "RATE_LIMITED"


@pytest.mark.parametrize("exc", [
    TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
], ids=type)
async def test_a_store_or_bus_that_does_not_answer_is_a_503_to_retry(exc, caplog):
    response = await run(exc)
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    error = body(response)["error"]
    assert isinstance(error, dict) and error["code"] == "BACKEND_UNAVAILABLE"
    assert "retry shortly" in error["message"]
    assert all(r.exc_info is None for r in caplog.records)  # one line, no traceback


async def test_a_database_error_that_is_a_bug_stays_a_500():
    response = await run(asyncpg.UniqueViolationError("duplicate key"))
    assert response.status == 500
    assert body(response) == {"error": {"code": "INTERNAL_ERROR", "message": "internal error"}}
