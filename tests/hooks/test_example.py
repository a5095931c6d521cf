"""``examples/backend``: the example application backend, run as its README says, with a
node configured by its ``tidings.toml`` (the ports changed to free ones)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from tests.channels.helpers import Channels, Refused
from tests.hooks.conftest import ROOT
from tests.support.server import RunningServer
from tests.support.services import free_port
from tests.support.wire import Wire
from tidings.protocol.codes import MsgType

Factory = Callable[..., Awaitable[RunningServer]]
EXAMPLE = ROOT / "examples" / "backend"


@pytest.fixture
def example() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "app.py"), "--port", str(port), "--secret", "change-me"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def _up(url: str) -> None:
    async with asyncio.timeout(30), aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.post(url + "/tidings/rpc", data=b"{}") as r:
                    if r.status == 401:  # unsigned: refused, so it is listening
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)


async def test_the_example_backend(server_factory: Factory, http: aiohttp.ClientSession,
                                   example: tuple[str, subprocess.Popen[str]]) -> None:
    url, proc = example
    await _up(url)
    settings: dict[str, Any] = {
        k: (v.replace("http://127.0.0.1:9000", url) if isinstance(v, str) else v)
        for k, v in tomllib.loads((EXAMPLE / "tidings.toml").read_text()).items()}
    node = await server_factory(**settings, webhook_poll_interval=0.1)
    staff = await node.node.store.create_user("staff", "!")  # user 1: STAFF, SESSIONS
    _, token = await node.quick_user()
    wire = await Wire.open(http, node.ws_url)
    rsp = await wire.auth(token)
    assert rsp["data"]["motd"].endswith("from 127.0.0.1")
    await wire.backlog()
    channels = Channels(wire)
    with pytest.raises(Refused, match="staff only"):
        await channels.subscribe("room:staff")
    await channels.subscribe("room:lobby")
    await channels.publish("room:lobby", {"text": "oh heck"})
    with pytest.raises(Refused, match="send"):
        await channels.publish("room:lobby", {"text": " "})
    assert [p["data"] for p in await channels.until(1)] == [{"text": "oh ****"}]
    await wire.send(MsgType.RPC, {"method": "add", "data": {"a": 2, "b": 3}})
    _, answer = await wire.expect(MsgType.RPC_RSP)
    assert answer == {"method": "add", "data": 5}
    own = await Wire.open(http, node.ws_url)
    assert (await own.auth("session:demo"))["user_id"] == staff.id  # the app's own session
    await own.close()
    await wire.close()
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):  # the webhooks it printed
        while not any("publication" in line for line in lines):
            lines.append(await asyncio.to_thread(proc.stdout.readline))
    assert any('"text": "oh ****"' in line for line in lines), lines
