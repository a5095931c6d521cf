"""The test-only echo endpoint: off by default, and with the WebSocket options of /ws."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.compliance.harness import ECHO_PATH, negotiates_deflate
from tests.support.server import RunningServer
from tidings.cli import _settings as cli_settings
from tidings.cli import build_parser
from tidings.config import load_settings
from tidings.gateway import echo

NodeFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def node_factory(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    started: list[RunningServer] = []

    async def start(**settings: Any) -> RunningServer:
        node = await RunningServer(f"sqlite:///{tmp_path / 'tidings.db'}", **settings).start()
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        await node.stop()


def test_path_is_the_documented_one() -> None:
    assert echo.ECHO_PATH == ECHO_PATH == "/test/echo"


def test_setting_is_off_by_default_and_on_from_env_or_flag() -> None:
    assert load_settings(environ={}).test_endpoints is False
    assert load_settings(environ={"TIDINGS_TEST_ENDPOINTS": "true"}).test_endpoints is True
    assert load_settings(environ={"TIDINGS_TEST_ENDPOINTS": "0"}).test_endpoints is False
    args = build_parser().parse_args(["serve", "--test-endpoints"])
    assert cli_settings(args).test_endpoints is True
    with pytest.raises(ValueError, match="test_endpoints"):
        load_settings(environ={"TIDINGS_TEST_ENDPOINTS": "maybe"})


async def test_no_echo_endpoint_unless_enabled(node_factory: NodeFactory) -> None:
    node = await node_factory()
    assert node.http is not None
    async with node.http.get(node.http_url + ECHO_PATH) as response:
        assert response.status == 404


async def test_echo_returns_text_and_binary_in_their_own_framing(
        node_factory: NodeFactory) -> None:
    node = await node_factory(test_endpoints=True)
    assert node.http is not None
    async with node.http.ws_connect(node.http_url + ECHO_PATH) as ws:
        await ws.send_str("héllo")
        assert (await ws.receive()).data == "héllo"
        await ws.send_bytes(b"\x00\xff")
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.BINARY and msg.data == b"\x00\xff"
        await ws.ping(b"p")  # answered by the read loop, as on /ws
        await ws.send_str("after ping")
        assert (await ws.receive()).data == "after ping"
        await ws.close()
    assert ws.close_code == 1000


async def test_echo_has_the_message_limit_and_compression_of_ws(
        node_factory: NodeFactory) -> None:
    node = await node_factory(test_endpoints=True, max_frame_bytes=1000)
    assert node.http is not None
    url = node.http_url + ECHO_PATH
    assert await negotiates_deflate(url) is await negotiates_deflate(node.http_url + "/ws")
    async with node.http.ws_connect(url) as ws:
        await ws.send_bytes(b"x" * 1000)  # the limit itself is accepted
        assert len((await ws.receive()).data) == 1000
        await ws.send_bytes(b"x" * 1001)
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1009
