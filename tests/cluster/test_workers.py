"""``tidings serve --workers N``: several nodes on one port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import PostgresServer
from tests.support.nodes import TIDINGS, NodeProcess
from tests.support.wire import Wire
from tidings.auth import Authenticator
from tidings.config import Settings
from tidings.store import open_store

pytestmark = pytest.mark.slow


def test_workers_with_the_memory_bus_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [TIDINGS, "serve", "--workers", "2", "--database-url", f"sqlite:///{tmp_path}/t.db"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "TIDINGS_BUS_URL": "memory://"})
    assert result.returncode != 0
    assert "--workers needs a cluster bus" in result.stderr


def test_workers_need_a_fixed_port(redis_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [TIDINGS, "serve", "--workers", "2", "--port", "0", "--bus-url", redis_url,
         "--database-url", f"sqlite:///{tmp_path}/t.db"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "fixed --port" in result.stderr


async def test_two_workers_share_one_port_and_both_serve(
        redis_url: str, postgres_server: PostgresServer, tmp_path: Path) -> None:
    name = f"w_{secrets.token_hex(6)}"
    database = postgres_server.create_database(name)
    node = NodeProcess("workers", tmp_path, {
        "TIDINGS_DATABASE_URL": database, "TIDINGS_BUS_URL": redis_url,
        "TIDINGS_HEARTBEAT_INTERVAL": "0.3",
        "TIDINGS_MAX_CONNECTIONS_PER_USER": "100"},
        args=["--workers", "2"])
    node.start()
    try:
        async with aiohttp.ClientSession() as http:
            store = open_store(database)
            user = await store.create_user("root", "!")
            token, _ = await Authenticator(store, Settings()).issue(user.id, scopes=("admin",))
            await store.close()
            # Both workers must be listening first: the port answers as soon as one is.
            # A worker registers in the cluster just before it listens.
            async with asyncio.timeout(30):
                while True:
                    async with http.get(node.http_url + "/api/v1/cluster/nodes",
                                        headers={"Authorization": f"Bearer {token}"}) as r:
                        if len((await r.json())["nodes"]) == 2:
                            break
                    await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            # The kernel spreads connections over the workers by their 4-tuple: with 24
            # connections, all on one worker has a chance of 2**-23.
            sessions = [aiohttp.ClientSession() for _ in range(24)]  # one TCP link each
            try:
                wires = [await Wire.ready(s, node.ws_url, token, f"d{i}")
                         for i, s in enumerate(sessions)]
                nodes: list[dict[str, object]] = []
                async with asyncio.timeout(20):
                    while sum(int(str(n["connections"])) for n in nodes) < len(wires):
                        await asyncio.sleep(0.3)
                        async with http.get(node.http_url + "/api/v1/cluster/nodes",
                                            headers={"Authorization": f"Bearer {token}"}) as r:
                            nodes = (await r.json())["nodes"]
                assert len(nodes) == 2
                assert {n["address"] for n in nodes} == {f"127.0.0.1:{node.port}"}
                assert node.pid not in {n["pid"] for n in nodes}  # the parent supervises
                assert all(int(str(n["connections"])) > 0 for n in nodes), nodes
                for wire in wires:
                    await wire.close()
            finally:
                for session in sessions:
                    await session.close()
    finally:
        node.stop()
        postgres_server.drop_database(name)
    # SIGTERM to the parent stopped every worker.
    for pid in [int(n["pid"]) for n in nodes]:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
