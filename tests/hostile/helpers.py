"""Shared checks for the hostile-input tests: a bystander that must keep chatting,
server-side error logs, memory and connection counts."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.protocol.codes import MsgType


class ServerErrors(logging.Handler):
    """Collects ERROR records of the ``tidings`` loggers: an internal error (a
    traceback, a 500, a failed commit) caused by client input is a finding."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def summary(self) -> str:
        return "; ".join(f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info
                         else f"{r.name}: {r.getMessage()}" for r in self.records)


server_errors = ServerErrors()


async def assert_bystander_chats(server: RunningServer, http: aiohttp.ClientSession, *,
                                 binary: bool = True) -> None:
    """Two fresh users on the same node connect, chat and get the push, within 10 s;
    /api/health answers ok; and no internal error was logged by the node meanwhile."""
    async with asyncio.timeout(10):
        _, a_token = await server.quick_user()
        b_id, b_token = await server.quick_user()
        a = await Wire.open(http, server.ws_url, binary=binary)
        b = await Wire.open(http, server.ws_url, binary=binary)
        try:
            await a.auth(a_token)
            await a.backlog()
            await b.auth(b_token)
            await b.backlog()
            ack = await a.chat(b_id, "bystander: still here")
            _, push = await b.expect(MsgType.CHAT_PUSH)
            assert push["message_id"] == ack["message_id"]
            assert push["content"] == "bystander: still here"
        finally:
            await a.close()
            await b.close()
        async with http.get(server.http_url + "/api/health") as r:
            assert r.status == 200, await r.text()
    assert not server_errors.records, \
        f"the node logged an internal error: {server_errors.summary()}"


async def authed(server: RunningServer, http: aiohttp.ClientSession, token: str | None = None,
                 *, binary: bool = True, device_id: str | None = None) -> Wire:
    """An authenticated raw protocol connection with its backlog read."""
    if token is None:
        _, token = await server.quick_user()
    wire = await Wire.open(http, server.ws_url, binary=binary)
    await wire.auth(token, device_id)
    wire.replayed = await wire.backlog()
    return wire


async def reply_to(wire: Wire, timeout: float = 5.0) -> tuple[int, int, dict[str, Any]]:
    """The next reply (MsgError, MsgPong, ChatAck, MsgSyncRsp…), skipping pushes."""
    while True:
        t, seq, payload = await wire.recv(timeout)
        if t not in (MsgType.PRESENCE_PUSH, MsgType.CHAT_PUSH, MsgType.RECEIPT_PUSH):
            return t, seq, payload


async def still_answers(wire: Wire) -> None:
    """The connection is open and served: a MsgPing gets its MsgPong."""
    seq = await wire.send(MsgType.PING)
    t, got, _ = await reply_to(wire)
    assert (t, got) == (MsgType.PONG, seq), (t, got, _)


async def history(server: RunningServer, http: aiohttp.ClientSession, token: str, peer: int
                  ) -> list[dict[str, Any]]:
    """Every message between the token's user and ``peer``, oldest first."""
    url = f"{server.http_url}/api/v1/messages?peer={peer}&limit=500"
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return list(reversed((await r.json())["messages"]))


async def health_connections(server: RunningServer, http: aiohttp.ClientSession) -> int:
    async with http.get(server.http_url + "/api/health") as r:
        return int((await r.json())["connections"])


def rss_bytes() -> int:
    """Resident memory of this process, which runs the node (it is in-process)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float,
                     what: str) -> float:
    """Poll ``check`` every 20 ms until true; fail after ``timeout`` s. Returns the wait."""
    started = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)
