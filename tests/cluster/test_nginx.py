"""docs/nginx/tidings.conf, run by a real nginx in front of three nodes."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.cluster.conftest import Cluster
from tests.support.services import free_port
from tidings.client import ChatMessage, Client, ReconnectPolicy

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).parents[2] / "docs" / "nginx" / "tidings.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def render(cluster: Cluster, port: int) -> str:
    """The documented config with this test's ports, and nothing else changed."""
    text = CONFIG.read_text()
    servers = iter(n.port for n in cluster.nodes)
    text, count = re.subn(r"server 127\.0\.0\.1:\d+", lambda _: f"server 127.0.0.1:{next(servers)}",
                          text)
    assert count == 3
    text, count = re.subn(r"listen 8080;", f"listen 127.0.0.1:{port};", text)
    assert count == 1
    return text


@pytest.fixture
def nginx(cluster: Cluster, tmp_path: Path) -> Iterator[str]:
    if not Path(NGINX).exists():
        pytest.fail("nginx not installed: run scripts/test-deps")
    port = free_port()
    (tmp_path / "tidings.conf").write_text(render(cluster, port))
    (tmp_path / "nginx.conf").write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    include {tmp_path}/tidings.conf;
}}
""")
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                             "-g", "daemon off; master_process on;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize("cluster", ["redis"], indirect=True)
async def test_clients_behind_nginx_survive_the_loss_of_two_nodes(cluster: Cluster,
                                                                  nginx: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{nginx}/api/health") as r:
            assert r.status == 200 and (await r.json())["bus"] == "ok"
        # A browser's Origin names the proxy's host and port: the Host nginx passes on
        # must match it, or the upgrade would be refused (403).
        ws = await http.ws_connect(f"ws://{nginx}/ws", origin=f"http://{nginx}")
        await ws.close()
    alice_id, alice_token = await cluster.register("alice")
    bob_id, bob_token = await cluster.register("bob")
    policy = ReconnectPolicy(initial_interval=0.2, max_interval=1.0)
    alice = Client(f"ws://{nginx}/ws", alice_token, device_id="a", reconnect=policy)
    bob = Client(f"ws://{nginx}/ws", bob_token, device_id="b", reconnect=policy)
    await alice.connect()
    await bob.connect()
    cluster.clients += [alice, bob]
    acked = [(await alice.send_chat(bob_id, f"before {i}")).message_id for i in range(5)]
    cluster.nodes[0].kill()
    cluster.nodes[1].kill()
    acked += [(await alice.send_chat(bob_id, f"after {i}")).message_id for i in range(5)]
    got: list[int] = []
    async with asyncio.timeout(30):
        async for event in bob.events():
            if isinstance(event, ChatMessage):
                got.append(event.message_id)
                if len(got) == len(acked):
                    break
    assert got == acked
    assert alice_id != bob_id
