"""The HTTP API under hostile input on raw sockets: oversized, streamed, lying and
abandoned bodies, malformed JSON, request smuggling, injection-looking parameters.

docs/protocol.md, HTTP API: request bodies are JSON (whatever the Content-Type), at most
max_body_bytes (413 BODY_TOO_LARGE); not JSON is 400 BAD_JSON; valid JSON of the wrong
shape is 422 INVALID_BODY; a bad query parameter is 400 BAD_PARAMETER; every error is
JSON; 500 only for a server bug.
"""

from __future__ import annotations

import asyncio
import json
import logging

from tests.hostile.helpers import assert_bystander_chats, server_errors
from tests.hostile.rawws import EOF, RawSocket, http_exchange

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"


def _request(server, method: str, path: str, body: bytes = b"", *,
             headers: dict[str, str] | None = None) -> bytes:
    host = f"{server.node.settings.host}:{server.node.port}"
    base = {"Host": host, "Content-Type": "application/json",
            "Content-Length": str(len(body)), "Connection": "close"}
    base.update(headers or {})
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in base.items() if v]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


async def test_streamed_body_over_max_body_bytes_is_413_before_it_ends(server, http):
    """A chunked body with no Content-Length, streamed in 64 KiB chunks: 413
    BODY_TOO_LARGE once 1 MiB is passed, not after the whole (endless) stream."""
    raw = await RawSocket.tcp(server)
    try:
        await raw.send(_request(server, "POST", LOGIN, headers={
            "Content-Length": "", "Transfer-Encoding": "chunked"}))
        chunk = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"
        sent = 0
        while not raw.reader._buffer and sent < 8 << 20:  # stop once an answer arrived
            raw.writer.write(chunk)
            sent += 65536
            try:
                async with asyncio.timeout(1):
                    await raw.writer.drain()
            except (TimeoutError, ConnectionError):
                break
            await asyncio.sleep(0.005)  # let the node (same loop) read and answer
        status, headers, body = await raw.read_http_response(3)
        assert (status, _error_code(body)) == (413, "BODY_TOO_LARGE")
        assert headers["content-type"].startswith("application/json")
        assert sent < 3 << 20, f"{sent} bytes taken before the 413"
    finally:
        await raw.aclose()
    await assert_bystander_chats(server, http)


async def test_declared_content_length_over_the_limit_is_413_without_the_body(server, http):
    raw = await RawSocket.tcp(server)
    try:
        await raw.send(_request(server, "POST", LOGIN, headers={"Content-Length": "50000000"}))
        try:
            status, _, body = await raw.read_http_response(1.0)
        except TimeoutError:
            raise AssertionError("no answer within 1 s") from None
        assert (status, _error_code(body)) == (413, "BODY_TOO_LARGE")
    finally:
        await raw.aclose()
    await assert_bystander_chats(server, http)


async def test_a_body_that_never_completes_is_dropped_within_a_bound(server_factory, http):
    """Bound: the node's idle_timeout (here 0.5 s), the limit on a client that sends
    nothing, plus 1 s; a 408 or a plain close both do."""
    server = await server_factory(idle_timeout=0.5)
    raws = [await RawSocket.tcp(server) for _ in range(20)]
    try:
        for raw in raws:
            await raw.send(_request(server, "POST", LOGIN, headers={"Content-Length": "10"})
                           + b'{"a"')
        await assert_bystander_chats(server, http)  # served meanwhile
        dropped = await asyncio.gather(*(raw.eof(1.5) for raw in raws))
        assert all(dropped), f"{dropped.count(False)} of 20 still open after 1.5 s"
    finally:
        for raw in raws:
            await raw.aclose()


async def test_a_client_vanishing_mid_body_is_not_an_internal_error(server, http):
    for how in ("fin", "rst"):
        raw = await RawSocket.tcp(server)
        await raw.send(_request(server, "POST", LOGIN, headers={"Content-Length": "100"})
                       + b'{"username": "a')
        await asyncio.sleep(0.05)
        if how == "rst":
            raw.abort()
        else:
            await raw.aclose()
    await asyncio.sleep(0.2)
    assert not server_errors.records, server_errors.summary()
    await assert_bystander_chats(server, http)


BAD_JSON = {
    "NaN": b'{"username":"a","password":NaN}',
    "Infinity": b'{"username":"a","password":Infinity}',
    "UTF-8 BOM": b'\xef\xbb\xbf{"username":"bom","password":"correct horse"}',
    "single quotes": b"{'username':'a','password':'correct horse'}",
    "comment": b'{"username":"a",/* x */"password":"correct horse"}',
    "lone surrogate": b'{"username":"\\ud800","password":"correct horse"}',
}
WRONG_SHAPE = {
    "array": b"[]",
    "null": b"null",
    "string": b'"x"',
    "number": b"1",
    "10 000-deep array": b"[" * 10_000 + b"]" * 10_000,
    "5 000-digit username": b'{"username":' + b"9" * 5000 + b',"password":"correct horse"}',
    "1e400 password": b'{"username":"a","password":1e400}',
    "1 000-deep unknown field": b'{"username":"a","password":"correct horse","x":'
                                + b"[" * 1000 + b"]" * 1000 + b"}",
    "NUL in username": b'{"username":"a\\u0000b","password":"correct horse"}',
}
EITHER = {  # msgspec reports the first error it meets: the type, or the truncation
    "truncated 10 000-deep": b'{"username":' + b"[" * 10_000,
    "truncated 10 000-deep unknown field": b'{"x":' + b"[" * 10_000,
}


async def test_malformed_json_bodies_are_400_and_wrong_shapes_422_fast(server, http):
    for name, body in {**BAD_JSON, **WRONG_SHAPE, **EITHER}.items():
        started = asyncio.get_running_loop().time()
        status, _, answer = await http_exchange(server, _request(server, "POST", REGISTER,
                                                                 body))
        got = (status, _error_code(answer))
        if name in EITHER:
            assert got in ((400, "BAD_JSON"), (422, "INVALID_BODY")), (name, answer[:200])
        else:
            expected = (400, "BAD_JSON") if name in BAD_JSON else (422, "INVALID_BODY")
            assert got == expected, (name, answer[:200])
        assert asyncio.get_running_loop().time() - started < 0.5, name
    await assert_bystander_chats(server, http)


async def test_invalid_utf8_inside_a_json_string_is_400_bad_json(server, http):
    for path in (REGISTER, LOGIN):
        body = b'{"username":"\xff\xfe","password":"correct horse"}'
        status, _, answer = await http_exchange(server, _request(server, "POST", path, body))
        assert (status, _error_code(answer)) == (400, "BAD_JSON"), (path, answer)
    await assert_bystander_chats(server, http)


async def test_duplicate_json_keys_last_one_wins(server, http):
    """Undocumented; pinned, and the same rule as the WebSocket envelope."""
    body = b'{"username":"dupe_first","username":"dupe_last","password":"correct horse"}'
    status, _, answer = await http_exchange(server, _request(server, "POST", REGISTER, body))
    assert status == 201 and json.loads(answer)["username"] == "dupe_last"
    assert await server.node.store.get_user_by_name("dupe_first") is None
    await assert_bystander_chats(server, http)


async def test_request_smuggling_and_malformed_requests_are_400_and_the_node_serves(server,
                                                                                   http):
    """Content-Length with Transfer-Encoding, two Content-Lengths, an invalid method,
    a header without a colon: 400, the smuggled request behind them never answered."""
    host = f"{server.node.settings.host}:{server.node.port}"
    smuggled = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    requests = {
        "CL.TE": f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n"
                 f"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode() + smuggled,
        "two Content-Lengths": f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0"
                               f"\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode()
                               + smuggled,
        "TE obfuscated": f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: "
                         f"chunked, identity\r\n\r\n0\r\n\r\n".encode() + smuggled,
        "invalid method": b"G\x00ET / HTTP/1.1\r\n\r\n",
        "header without colon": f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nNoColon\r\n"
                                f"\r\n".encode(),
    }
    for name, request in requests.items():
        raw = await RawSocket.tcp(server)
        try:
            await raw.send(request)
            status, _, _ = await raw.read_http_response(3)
            assert status == 400, name
            try:
                extra = await raw.read_http_response(0.5)
            except (EOF, TimeoutError, ConnectionError):
                extra = None
            assert extra is None, f"{name}: the smuggled request was answered: {extra}"
        finally:
            await raw.aclose()
    await assert_bystander_chats(server, http)


async def test_parser_level_errors_are_400_one_log_line_and_a_close(server, http):
    """Requests aiohttp's own parser refuses never reach our middleware: they get its
    text/plain 400 and a close (documented in docs/protocol.md). What we own is the log:
    one WARNING line each, no traceback, nothing at ERROR."""
    host = f"{server.node.settings.host}:{server.node.port}"
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    aiohttp_log = logging.getLogger("aiohttp.server")
    aiohttp_log.addHandler(handler)
    try:
        for request in (
            f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nX-Big: {'a' * 10_000}\r\n\r\n",
            f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
        ):
            raw = await RawSocket.tcp(server)
            try:
                await raw.send(request.encode())
                status, _, _ = await raw.read_http_response(5.0)
                assert status == 400
                assert await raw.eof(2.0), "the connection stayed open after the 400"
            finally:
                await raw.aclose()
    finally:
        aiohttp_log.removeHandler(handler)
    assert len(records) == 2, [r.getMessage() for r in records]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in records)
    assert "400" in records[0].getMessage()
    await assert_bystander_chats(server, http)


async def test_injection_looking_query_parameters_are_400_bad_parameter(server, http):
    _, token = await server.quick_user()
    host = f"{server.node.settings.host}:{server.node.port}"
    queries = [
        "/api/v1/messages?peer=1%20OR%201=1", "/api/v1/messages?peer=1;DROP%20TABLE%20messages",
        "/api/v1/messages?peer=1'--", "/api/v1/messages?peer=1&limit=1%20UNION%20SELECT%201",
        "/api/v1/messages?peer=1&before=0x10", "/api/v1/messages?peer=%00",
        "/api/v1/messages?peer=1e3", "/api/v1/messages?peer=NaN",
        "/api/v1/presence?user_ids=1)%20OR%20(1=1", "/api/v1/presence?user_ids=1,2;--",
        "/api/v1/presence?user_ids=1,%27%20OR%201=1",
    ]
    for path in queries:
        status, _, body = await http_exchange(server, (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Connection: close\r\n\r\n").encode())
        assert (status, _error_code(body)) == (400, "BAD_PARAMETER"), path
    await assert_bystander_chats(server, http)


async def test_non_ascii_and_python_only_integer_spellings_are_400(server, http):
    _, token = await server.quick_user()
    for query in ("peer=1_0", "peer=%2B1", "peer=%201%20", "peer=%D9%A3", "peer=%EF%BC%91",
                  "peer=1&limit=5_0"):
        async with http.get(f"{server.http_url}/api/v1/messages?{query}",
                            headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 400, query
    async with http.get(f"{server.http_url}/api/v1/presence?user_ids=%D9%A3",
                        headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 400
    await assert_bystander_chats(server, http)


async def test_nul_in_the_login_device_id_is_never_a_500(server, http, request, store_url):
    """device_id "d\\u0000" at login: a token for that device (as on SQLite) or a 422 —
    never 500."""
    name = f"nul{id(request) % 100_000}"
    body = {"username": name, "password": "correct horse"}
    async with http.post(server.http_url + REGISTER, json=body) as r:
        assert r.status == 201
    async with http.post(server.http_url + LOGIN, json={**body, "device_id": "d\x00"}) as r:
        assert r.status in (200, 422), await r.text()
    await assert_bystander_chats(server, http)
