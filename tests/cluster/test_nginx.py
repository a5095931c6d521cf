"""deploy/nginx/tidings.conf, run by a real nginx in front of three nodes: /ws clients
survive the loss of two nodes; /socket.io/ and the editing sockets upgrade through it.
(tests/deploy runs the same file in the compose stack, with long-polling and desk events.)"""

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
from tidings.client import AiohttpTransport, ChatMessage, Client, ReconnectPolicy

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).parents[2] / "deploy" / "nginx" / "tidings.conf"
RENDER = CONFIG.parent / "render.sh"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def render(cluster: Cluster, port: int, out: Path) -> str:
    """The config with this test's ports (by deploy/nginx/render.sh, as compose does)."""
    subprocess.run(["sh", str(RENDER), str(CONFIG), str(out), f"127.0.0.1:{port}",
                    *(f"127.0.0.1:{n.port}" for n in cluster.nodes)], check=True)
    text = out.read_text()
    servers = re.findall(r"server (127\.0\.0\.1:\d+)", text)
    assert servers == [f"127.0.0.1:{n.port}" for n in cluster.nodes] * 2  # both upstreams
    assert f"listen 127.0.0.1:{port};" in text
    return text


def with_tls(path: Path, port: int) -> None:
    """The config's TLS example switched on, with a self-signed certificate."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(path.parent / "key.pem"),
                    "-out", str(path.parent / "cert.pem")], check=True, capture_output=True)
    lines = []
    for line in path.read_text().splitlines():
        if line.strip() == f"listen 127.0.0.1:{port};":
            continue  # "instead of the listen line above"
        example = re.match(r"\s*# ((listen 443 ssl|server_name|ssl_\w+)\b.*)", line)
        if example:
            line = "    " + example.group(1)
            line = line.replace("listen 443", f"listen 127.0.0.1:{port}")
            line = line.replace("/etc/ssl/tidings/fullchain.pem", str(path.parent / "cert.pem"))
            line = line.replace("/etc/ssl/tidings/privkey.pem", str(path.parent / "key.pem"))
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    assert sum("ssl" in line and not line.lstrip().startswith("#") for line in lines) == 4


@pytest.fixture
def nginx(cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if not Path(NGINX).exists():
        pytest.fail("nginx not installed: run scripts/test-deps")
    port = free_port()
    render(cluster, port, tmp_path / "tidings.conf")
    if "tls" in request.node.name:
        with_tls(tmp_path / "tidings.conf", port)
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


# A PostgreSQL store: the desk map and editing need SQL tables (not on the Redis store).
@pytest.mark.parametrize("cluster", ["redis-bus"], indirect=True)
async def test_socketio_and_editing_sockets_upgrade_through_nginx(cluster: Cluster,
                                                                  nginx: str) -> None:
    _, token = await cluster.register("carol")
    async with aiohttp.ClientSession() as http:
        # Engine.IO straight to WebSocket: the node's open packet comes back through nginx.
        ws = await http.ws_connect(f"ws://{nginx}/socket.io/?EIO=4&transport=websocket")
        opened = await ws.receive(timeout=10)
        assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0{"), opened
        assert "sid" in opened.data
        await ws.close()
        # An editing session's socket, opened through nginx, gets its first event.
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(f"http://{nginx}/api/v1/workspaces", json={"name": "n"},
                             headers=auth) as r:
            assert r.status == 201, await r.text()
            workspace = (await r.json())["id"]
        async with http.post(f"http://{nginx}/api/v1/workspaces/{workspace}/resources/1"
                             "/editing/start", headers=auth) as r:
            assert r.status == 201, await r.text()
            session = (await r.json())["session_id"]
        ws = await http.ws_connect(f"ws://{nginx}/api/v1/ws/editing/{session}", headers=auth)
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "connected" and first["data"]["session_id"] == session, first
        await ws.close()


@pytest.mark.parametrize("cluster", ["redis"], indirect=True)
async def test_tls_example_terminates_https_and_wss(cluster: Cluster, nginx: str) -> None:
    _, token = await cluster.register("dave")
    erin_id, _ = await cluster.register("erin")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        async with http.get(f"https://{nginx}/api/health") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        client = Client(f"wss://{nginx}/ws", token, device_id="tls",
                        connector=lambda url: AiohttpTransport.connect(url, session=http))
        await client.connect()
        try:
            ack = await client.send_chat(erin_id, "over TLS")
            assert ack.message_id > 0
        finally:
            await client.close()
