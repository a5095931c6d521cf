"""Secrets never reach the logs: passwords, access tokens (good and bad), JWTs, the
JWT secret and a database password, through every path that handles them — at
DEBUG level, in-process (what the code logs) and from a real ``tidings serve``
(what an operator's log file holds, aiohttp's and asyncpg's loggers included)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import aiohttp
import jwt
import pytest

from tests.chaos.node import NodeProcess
from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.protocol.codes import MsgType
from tidings.security import RedactSecrets, redact

JWT_SECRET = "jwt-" + secrets.token_hex(16)


def _secrets() -> dict[str, str]:
    alice = f"alice{secrets.token_hex(3)}"
    return {
        "username": alice,
        "password": "pw-" + secrets.token_hex(8),
        "wrong_password": "pw-" + secrets.token_hex(8),
        "refused_password": "pw-" + secrets.token_hex(8),
        "forged_token": "tdg_" + secrets.token_urlsafe(32)[:43],
        "good_jwt_sub": "",
        "bad_jwt": jwt.encode({"sub": "1", "exp": int(time.time()) + 600}, "x" * 32,
                              algorithm="HS256"),
    }


async def exercise(base: str, s: dict[str, str]) -> list[str]:
    """Every path that handles a secret; return the secrets used (to look for in logs)."""
    ws_url = base.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as http:
        body = {"username": s["username"], "password": s["password"]}
        async with http.post(base + "/api/v1/auth/register", json=body) as r:
            assert r.status == 201
        async with http.post(base + "/api/v1/auth/login", json=body) as r:
            token = (await r.json())["token"]
        async with http.post(base + "/api/v1/auth/login", json={
                "username": s["username"], "password": s["wrong_password"]}) as r:
            assert r.status == 401
        async with http.post(base + "/api/v1/auth/register", json={
                "username": s["username"], "password": s["refused_password"], "x": 1}) as r:
            assert r.status == 422
        async with http.post(base + "/api/v1/auth/register",
                             data=f'{{"password": "{s["refused_password"]}"') as r:
            assert r.status == 400  # truncated JSON
        good_jwt = jwt.encode({"sub": "1", "exp": int(time.time()) + 600}, JWT_SECRET,
                              algorithm="HS256")
        for bearer, status in ((token, 200), (s["forged_token"], 401), (good_jwt, 200),
                               (s["bad_jwt"], 401)):
            async with http.get(base + "/api/v1/messages?peer=1",
                                headers={"Authorization": f"Bearer {bearer}"}) as r:
                assert r.status == status, (bearer, await r.text())
        for credential, ok in ((token, True), (good_jwt, True), (s["forged_token"], False),
                               (s["bad_jwt"], False)):
            wire = await Wire.open(http, ws_url)
            seq = await wire.send(MsgType.AUTH, {"token": credential, "device_id": "d"})
            _, got, rsp = await wire.recv()
            assert got == seq and rsp["success"] is ok, rsp
            if ok:  # a MsgAuth with the token and a field of the wrong type
                await wire.send(MsgType.AUTH, {"token": credential, "device_id": 5})
            await wire.ws.close()
    return [s["password"], s["wrong_password"], s["refused_password"], token, token[4:24],
            s["forged_token"], s["forged_token"][4:24], good_jwt, good_jwt.split(".")[2],
            s["bad_jwt"], JWT_SECRET]


def _leaks(text: str, used: list[str]) -> list[str]:
    return [secret for secret in used if secret in text]


async def test_the_code_logs_no_secret_at_debug_level(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    node = await RunningServer(f"sqlite:///{tmp_path / 's.db'}",
                               jwt_secret=JWT_SECRET).start()
    try:
        used = await exercise(node.http_url, _secrets())
    finally:
        await node.stop()
    text = caplog.text
    assert "auth refused" in text and "authenticated user" in text  # the paths were logged
    assert _leaks(text, used) == []


async def test_a_real_node_logs_no_secret_at_debug_level(postgres_server):
    name = f"secrets_{secrets.token_hex(4)}"
    postgres_server.create_database(name)
    db_password = "dbpw-" + secrets.token_hex(8)  # trust auth: accepted and ignored
    url = f"postgresql://postgres:{db_password}@127.0.0.1:{postgres_server.port}/{name}"
    node = NodeProcess(url, log_level="debug", jwt_secret=JWT_SECRET)
    try:
        await asyncio.to_thread(node.start)
        used = await exercise(node.http_url, _secrets())
        await asyncio.to_thread(node.terminate)
        text = node.log_text()
    finally:
        await asyncio.to_thread(node.close)
        postgres_server.drop_database(name)
    assert "auth refused" in text and "Tidings stopped" in text
    assert _leaks(text, [*used, db_password]) == []


@pytest.mark.parametrize("line,secret", [
    ("token tdg_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde refused", "AbCdEfGhIj"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "c2lnbmF0dXJl"),
    ("Authorization: Bearer opaque-thing-123", "opaque-thing-123"),
    ('body {"username": "a", "password": "hunter22"}', "hunter22"),
    ("login password=hunter22 &x", "hunter22"),
    ("connect postgresql://tidings:s3cr3t@db:5432/tidings failed", "s3cr3t"),
])
def test_redact_removes_credentials_and_keeps_the_rest(line, secret):
    cleaned = redact(line)
    assert secret not in cleaned and "redacted" in cleaned
    assert cleaned.split()[0] == line.split()[0]


def test_the_log_filter_redacts_messages_arguments_and_tracebacks():
    try:
        raise ValueError("bad tdg_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde")
    except ValueError:
        record = logging.LogRecord("tidings", logging.ERROR, __file__, 1, "login %s failed",
                                   ("password=hunter22",), exc_info=True)
        import sys
        record.exc_info = sys.exc_info()
    assert RedactSecrets().filter(record) is True
    text = logging.Formatter().format(record)
    assert "hunter22" not in text and "AbCdEfGhIj" not in text
    assert "login password=[redacted] failed" in text and "ValueError" in text
