"""JWTs issued over HTTP, refreshed over HTTP and in-band on ``/ws`` (``Refresh``), and
a connection whose credential runs out closed with 4402 — against a real node."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt

from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType

SECRET = "an-hs256-secret-of-32-bytes-min!"


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]
               ) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=body) as rsp:
        return rsp.status, await rsp.json()


async def log_in(server: RunningServer, http: aiohttp.ClientSession, name: str,
                 **extra: Any) -> dict[str, Any]:
    body = {"username": name, "password": "correct horse"}
    status, _ = await post(http, server.http_url + "/api/v1/auth/register", body)
    assert status == 201
    status, answer = await post(http, server.http_url + "/api/v1/auth/token",
                                {**body, **extra})
    assert status == 200, answer
    return answer


async def test_token_and_refresh_over_http(server_factory, http):
    server = await server_factory(jwt_secret=SECRET, jwt_ttl=60, jwt_issuer="tidings-test")
    got = await log_in(server, http, "ana", device_id="laptop")
    assert got["token_type"] == "Bearer" and got["refresh_token"].startswith("tdr_")
    claims = jwt.decode(got["token"], SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["iss"], claims["device_id"]) == (
        str(got["user_id"]), "tidings-test", "laptop")
    assert got["expires_at"] == claims["exp"] * 1000
    # The JWT works on the HTTP API.
    async with http.get(server.http_url + "/api/v1/tokens",
                        headers={"Authorization": "Bearer " + got["token"]}) as rsp:
        assert rsp.status == 200
        listed = await rsp.json()
    assert any(t["name"].startswith("refresh ") for t in listed["tokens"]), listed
    url = server.http_url + "/api/v1/auth/refresh"
    status, renewed = await post(http, url, {"refresh_token": got["refresh_token"]})
    assert status == 200 and renewed["refresh_token"] != got["refresh_token"]
    status, reused = await post(http, url, {"refresh_token": got["refresh_token"]})
    assert status == 401 and reused["error"]["code"] == "INVALID_REFRESH_TOKEN"
    assert "already used" in reused["error"]["message"]
    # The reuse revoked the log-in: the newest refresh token is dead too.
    status, _ = await post(http, url, {"refresh_token": renewed["refresh_token"]})
    assert status == 401
    status, bad = await post(http, server.http_url + "/api/v1/auth/token",
                             {"username": "ana", "password": "wrong password"})
    assert status == 401 and bad["error"]["code"] == "INVALID_CREDENTIALS"
    status, bad = await post(http, server.http_url + "/api/v1/auth/token",
                             {"username": "ana", "password": "correct horse",
                              "scopes": ["admin"]})
    assert status == 403 and bad["error"]["code"] == "FORBIDDEN"
    status, bad = await post(http, url, {"refresh_token": 5})
    assert status == 422  # the body does not validate


async def test_without_a_signing_key_the_routes_say_so(server, http):
    status, body = await post(http, server.http_url + "/api/v1/auth/token",
                              {"username": "x", "password": "correct horse"})
    assert status == 501 and body["error"]["code"] == "JWT_NOT_CONFIGURED"
    assert "jwt_secret" in body["error"]["message"]


async def test_a_connection_closes_4402_when_its_jwt_expires_unless_refreshed(
        server_factory, http):
    server = await server_factory(jwt_secret=SECRET, jwt_ttl=4)
    bob = await log_in(server, http, "bob")
    ana = await log_in(server, http, "ana")
    stays = await Wire.ready(http, server.ws_url, ana["token"])
    lapses = await Wire.ready(http, server.ws_url, ana["token"], "other-device")
    start = time.monotonic()
    # Refresh in-band with the refresh token: the answer carries the new pair.
    seq = await stays.send(MsgType.REFRESH, {"token": ana["refresh_token"]})
    got_seq, rsp = await stays.expect(MsgType.REFRESH_RSP)
    assert got_seq == seq and rsp["token"] and rsp["refresh_token"].startswith("tdr_")
    assert rsp["expires_at"] == jwt.decode(rsp["token"], SECRET,
                                           algorithms=["HS256"])["exp"] * 1000
    # Another user's token, or garbage, is refused; the connection stays.
    for token, words in ((bob["token"], "another user's"), ("nonsense", "unknown token")):
        seq = await stays.send(MsgType.REFRESH, {"token": token})
        got_seq, err = await stays.expect(MsgType.ERROR)
        assert got_seq == seq and err["code"] == ErrorCode.AUTH_FAILED
        assert words in err["message"]
    token = rsp["refresh_token"]

    async def renew() -> None:  # as a client does ahead of exp: HTTP, then in-band
        nonlocal token
        status, pair = await post(http, server.http_url + "/api/v1/auth/refresh",
                                  {"refresh_token": token})
        assert status == 200
        token = pair["refresh_token"]
        await stays.send(MsgType.REFRESH, {"token": pair["token"]})
        _, rsp = await stays.expect(MsgType.REFRESH_RSP)
        # token and refresh_token come only after a refresh token.
        assert rsp["expires_at"] == pair["expires_at"] and "token" not in rsp

    # Renew every second while waiting (a loaded machine may take seconds to close the
    # other one: a renewal schedule tied to that would let `stays` lapse too).
    renewing = True

    async def keep_renewing() -> None:
        while renewing:
            await asyncio.sleep(1)
            await renew()

    renewer = asyncio.create_task(keep_renewing())
    login_exp = jwt.decode(ana["token"], SECRET, algorithms=["HS256"])["exp"]
    # The un-refreshed one closes with 4402 once its JWT is past exp (watchdog: 1 s).
    assert await lapses.closed_with(timeout=20) == CloseCode.TOKEN_EXPIRED
    assert time.time() >= login_exp
    while time.monotonic() - start <= 5:  # the refreshed one outlives the first JWT's 4 s
        await asyncio.sleep(0.5)
    renewing = False
    await renewer
    await stays.send(MsgType.PING)
    await stays.expect(MsgType.PONG)
    await stays.close()


async def test_a_refresh_frame_before_auth_is_refused(server_factory, http):
    server = await server_factory(jwt_secret=SECRET)
    wire = await Wire.open(http, server.ws_url, binary=False)
    await wire.send(MsgType.REFRESH, {"token": "x"})
    _, err = await wire.expect(MsgType.ERROR)
    assert err["code"] == ErrorCode.NOT_AUTHENTICATED
    await wire.close()
