"""deploy/compose.yaml: three nodes, PostgreSQL, Redis and nginx in containers, up with
one command (the host-network override on top), every client path through nginx."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.ledger import Ledger
from tests.chaos.traffic import Traffic
from tests.deploy.conftest import MEASURED, register, wait_healthy
from tests.deploy.engine import REPO, TIDINGS_IMAGE, Engine
from tests.desks.conftest import NODE_DIR, SocketIoClient, of_type
from tests.editing.client import Api
from tests.support.services import free_port

pytestmark = pytest.mark.slow

NODES = ("tidings1", "tidings2", "tidings3")


def without_published_ports(config: str) -> str:
    """`docker-compose config` output without the ``ports`` of nginx: docker-compose 1.29
    refuses port bindings on the host network (Docker itself would only ignore them)."""
    out: list[str] = []
    service = ""
    skipping = False
    for line in config.splitlines():
        indent = len(line) - len(line.lstrip())
        if indent == 2 and line.rstrip().endswith(":"):
            service = line.strip()[:-1]
        if skipping and (indent > 4 or line.lstrip().startswith("- ")):
            continue  # PyYAML writes a list's items at its key's indent
        skipping = service == "nginx" and indent == 4 and line.strip() == "ports:"
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Stack:
    """A running compose project: compose.yaml with compose.host.yaml on top."""

    engine: Engine
    env: dict[str, str]
    project: str
    nginx: str  # http://127.0.0.1:PORT
    nodes: dict[str, str]  # service -> http://127.0.0.1:PORT
    files: tuple[Path, ...] = (REPO / "deploy/compose.yaml", REPO / "deploy/compose.host.yaml")

    def compose(self, *args: str, timeout: float = 300) -> str:
        command = ["docker-compose", "-p", self.project]
        for path in self.files:
            command += ["-f", str(path)]
        proc = subprocess.run([*command, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40")


@pytest.fixture(scope="module")
def stack(engine: Engine, tidings_image: str, stand_in_images: dict[str, str],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: run scripts/test-deps")
    ports = {name: free_port() for name in ("TIDINGS_PG_PORT", "TIDINGS_REDIS_PORT",
                                            "TIDINGS1_PORT", "TIDINGS2_PORT", "TIDINGS3_PORT",
                                            "TIDINGS_HTTP_PORT")}
    env = {**engine.env, **{k: str(v) for k, v in ports.items()},
           "TIDINGS_IMAGE": tidings_image, "POSTGRES_IMAGE": stand_in_images["postgres"],
           "REDIS_IMAGE": stand_in_images["redis"], "NGINX_IMAGE": stand_in_images["nginx"],
           "POSTGRES_PASSWORD": secrets.token_hex(8)}
    made = Stack(engine, env, f"tidingstest{secrets.token_hex(3)}",
                 f"http://127.0.0.1:{ports['TIDINGS_HTTP_PORT']}",
                 {name: f"http://127.0.0.1:{ports[name.upper() + '_PORT']}" for name in NODES})
    assert tidings_image == TIDINGS_IMAGE
    merged = tmp_path_factory.mktemp("compose") / "compose.yaml"
    merged.write_text(without_published_ports(made.compose("config")))
    made.files = (merged,)
    started = time.monotonic()
    try:
        made.compose("up", "-d", "--no-build")

        async def all_healthy() -> None:
            async with aiohttp.ClientSession() as http:
                for name, base in made.nodes.items():
                    await wait_healthy(http, base, what=name)
                await wait_healthy(http, made.nginx, what="nginx")

        try:
            asyncio.run(all_healthy())
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{made.logs()}") from None
        MEASURED["compose up to healthy"] = f"{time.monotonic() - started:.1f} s"
        yield made
    finally:
        made.compose("down", "-v", "--remove-orphans", "-t", "10")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def socketio(url: str, token: str, rooms: dict[str, int], transports: str = ""
                   ) -> SocketIoClient:
    """A real socket.io-client (tests/desks/node), joined to ``rooms``."""
    if not (NODE_DIR / "node_modules" / "socket.io-client").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True, timeout=300)
    args = [str(NODE_DIR / "listen.mjs"), url, token, json.dumps(rooms)]
    proc = await asyncio.create_subprocess_exec("node", *args, *([transports] if transports
                                                                 else []),
                                                stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE)
    client = SocketIoClient(proc)
    event = await client.next(lambda e: e["event"] in ("joined", "connect_error"), 20)
    assert event["event"] == "joined" and event["ack"]["ok"], event
    return client


async def test_the_stack_serves_every_path_through_nginx(stack: Stack,
                                                         http: aiohttp.ClientSession) -> None:
    async with http.get(stack.nginx + "/api/health") as r:
        health = await r.json()
        assert r.status == 200 and health["bus"] == "ok" and health["store"] == "ok", health
    # The nodes share one PostgreSQL store and one Redis bus: three live nodes.
    nodes = stack.compose("exec", "-T", "tidings1", "tidings-healthcheck")
    assert nodes.startswith("healthy:"), nodes
    stack.compose("exec", "-T", "tidings1", "tidings", "desks", "demo", "--floors", "2",
                  "--desks-per-floor", "12")
    alice, bob = await register(http, stack.nginx, 2)

    # /ws: a chat between two SDK clients through nginx.
    from tidings.client import ChatMessage, Client

    a = Client(stack.nginx.replace("http", "ws") + "/ws", alice.token, device_id="a")
    b = Client(stack.nginx.replace("http", "ws") + "/ws", bob.token, device_id="b")
    await a.connect()
    await b.connect()
    try:
        ack = await a.send_chat(bob.user_id, "hello through nginx")
        async with asyncio.timeout(20):
            async for event in b.events():
                if isinstance(event, ChatMessage):
                    assert (event.message_id, event.content) == (ack.message_id,
                                                                 "hello through nginx")
                    break
    finally:
        await a.close()
        await b.close()

    # /socket.io/: a websocket client and a long-polling-only one, joined to floor 1;
    # each node in turn changes a desk: every change reaches both through nginx.
    ws_client = await socketio(stack.nginx, alice.token, {"floor": 1})
    polling = await socketio(stack.nginx, bob.token, {"floor": 1}, "polling")
    try:
        # The default client starts polling and upgrades to WebSocket through nginx. The
        # upgrade may already have been printed while `socketio` waited for the join's ack.
        upgraded = {"event": "upgrade", "transport": "websocket"}
        if ws_client.seen[0]["transport"] != "websocket" and upgraded not in ws_client.seen:
            await ws_client.next(lambda e: e == upgraded)
        assert polling.seen[0] == {"event": "connect", "transport": "polling"}
        for desk, (name, base) in zip((2, 3, 4, 5, 6, 7), list(stack.nodes.items()) * 2,
                                      strict=True):
            action = "occupy" if desk < 5 else "release"
            if action == "release":
                desk -= 3
            async with http.post(f"{base}/api/workstations/{desk}/{action}",
                                 headers={"Authorization": f"Bearer {alice.token}"}) as r:
                assert r.status == 200, (name, await r.text())
            status = "occupied" if action == "occupy" else "available"
            for client in (ws_client, polling):
                await client.next(of_type("workstation_update", id=desk, status=status), 20)
        # The polling session lived through every poll of that (sticky to one node):
        # never a disconnect, never a new handshake.
        for client in (ws_client, polling):
            assert [e["event"] for e in client.seen].count("connect") == 1, client.seen
            assert "disconnect" not in [e["event"] for e in client.seen], client.seen
        assert "upgrade" not in [e["event"] for e in polling.seen], polling.seen
    finally:
        await ws_client.close()
        await polling.close()

    # /api/v1/ws/editing/: bob asks alice's session for control; her socket hears it.
    alice_api = Api(http, stack.nginx, alice.token, alice.user_id)
    bob_api = Api(http, stack.nginx, bob.token, bob.user_id)
    workspace = await alice_api.workspace("deploy")
    await alice_api.add_member(workspace, bob.user_id)
    mine, theirs = alice_api.tab(workspace, 1), bob_api.tab(workspace, 1)
    await mine.start()
    await theirs.start()
    sock = await mine.connect()  # through nginx: the upgrade must pass
    try:
        reply = await theirs.request()
        assert reply.status in (200, 201), reply
        pushed = await sock.next("takeover_request", timeout=20)
        assert pushed["request"]["id"] == reply.body["request"]["id"], pushed
        assert pushed["request"]["requester"]["session_id"] == theirs.session_id, pushed
    finally:
        await sock.close()

    # docs/deployment.md's backup: pg_dump from the postgres container, while it serves.
    dump = subprocess.run(
        ["docker-compose", "-p", stack.project, "-f", str(stack.files[0]), "exec", "-T",
         "postgres", "pg_dump", "-U", "tidings", "-Fc", "--no-unlogged-table-data", "tidings"],
        env=stack.env, capture_output=True, timeout=120, check=True).stdout
    assert dump.startswith(b"PGDMP"), dump[:20]
    listing = subprocess.run(
        ["docker-compose", "-p", stack.project, "-f", str(stack.files[0]), "exec", "-T",
         "postgres", "pg_restore", "--list"], input=dump, env=stack.env,
        capture_output=True, timeout=120, check=True).stdout.decode()
    assert "TABLE DATA public messages" in listing and "TABLE DATA public workstations" \
        in listing, listing[:2000]


async def test_a_killed_node_container_loses_no_client_and_no_message(
        stack: Stack, http: aiohttp.ClientSession) -> None:
    accounts = await register(http, stack.nginx, 6)
    ledger = Ledger()
    traffic = Traffic(stack.nginx.replace("http", "ws") + "/ws", ledger, pause=0.02)
    victim = ""
    try:
        await traffic.connect(accounts, 2)  # least_conn spreads them over the nodes
        traffic.start_sending([a.user_id for a in accounts])
        await asyncio.sleep(1.5)
        held = {}
        for name, base in stack.nodes.items():  # kill the node that holds the most
            async with http.get(base + "/api/health") as r:
                held[name] = int((await r.json())["connections"])
        victim = max(held, key=lambda name: held[name])
        assert held[victim] > 0 and sum(held.values()) >= 12, held
        acked_before = ledger.acked()
        stack.engine.docker("kill", stack.container(victim))  # SIGKILL: no drain
        await asyncio.sleep(3.0)  # the devices that were on it reconnect through nginx
        await traffic.finish_sending()
        await traffic.settle(60)
        figures = ledger.check()
        moved = {device for device, _, _ in traffic.disconnects}
        back = {device for device, _ in traffic.reconnects}
    finally:
        await traffic.close()
        if victim:
            stack.engine.docker("start", stack.container(victim))
    assert moved, "no device was on the killed node"
    assert moved <= back, (moved, back)  # each reconnected, through nginx, to another node
    assert figures.acked > acked_before > 20, figures
    assert figures.lost == 0 and figures.duplicated == 0, figures
    assert figures.connections >= 12 + len(moved), figures
    await wait_healthy(http, stack.nodes[victim], what=f"{victim} after docker start")
