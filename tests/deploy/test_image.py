"""The Dockerfile: built from the tree, non-root, healthy, and a `docker stop` drains
the node so that nothing acknowledged is lost across the restart (delivery ledger)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.chaos.ledger import Ledger
from tests.chaos.traffic import Traffic
from tests.deploy.conftest import register, wait_healthy
from tests.deploy.engine import Engine
from tests.support.services import free_port

pytestmark = pytest.mark.slow


class Container:
    """One `docker run -d --network host` of the image, removed (with its volume) after."""

    def __init__(self, engine: Engine, image: str, **env: str) -> None:
        self.engine = engine
        self.image = image
        self.name = f"tidings-test-{secrets.token_hex(4)}"
        self.volume = f"{self.name}-data"
        self.port = free_port()
        self.env = {"TIDINGS_HOST": "127.0.0.1", "TIDINGS_PORT": str(self.port), **env}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self) -> None:
        args = ["run", "-d", "--name", self.name, "--network", "host",
                "-v", f"{self.volume}:/data", "--health-interval", "1s",
                "--health-start-period", "30s"]
        for key, value in self.env.items():
            args += ["-e", f"{key}={value}"]
        self.engine.docker(*args, self.image)

    def inspect(self, template: str) -> str:
        return self.engine.docker("inspect", "-f", template, self.name).stdout.strip()

    def logs(self) -> str:
        proc = self.engine.docker("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def remove(self) -> None:
        self.engine.docker("rm", "-f", self.name, check=False)
        self.engine.docker("volume", "rm", "-f", self.volume, check=False)


@pytest.fixture
def container(engine: Engine, tidings_image: str) -> Iterator[Container]:
    made = Container(engine, tidings_image, TIDINGS_SHUTDOWN_TIMEOUT="8")
    try:
        yield made
    finally:
        made.remove()


async def wait_status(container: Container, status: str, timeout: float = 60.0) -> None:
    """Wait until Docker's HEALTHCHECK reports ``status`` for the container."""
    deadline = time.monotonic() + timeout
    while (got := container.inspect("{{.State.Health.Status}}")) != status:
        assert time.monotonic() < deadline, (got, container.inspect("{{json .State.Health}}"))
        await asyncio.sleep(0.5)


async def test_image_runs_as_non_root_migrates_and_is_healthy(engine: Engine,
                                                              container: Container) -> None:
    config = json.loads(engine.docker("image", "inspect", "-f", "{{json .Config}}",
                                      container.image).stdout)
    assert config["User"] == "tidings" and config["Entrypoint"] == ["tidings", "serve"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert config["StopSignal"] == "SIGTERM"
    uid = engine.docker("run", "--rm", "--network", "host", "--entrypoint", "id",
                        container.image, "-u").stdout.strip()
    assert uid != "0" and int(uid) >= 1000
    container.run()
    async with aiohttp.ClientSession() as http:
        health = await wait_healthy(http, container.base, what="container")
    assert health["status"] == "ok" and health["store"] == "ok" and health["bus"] == "ok"
    await wait_status(container, "healthy")  # the image's HEALTHCHECK said so too
    logs = container.logs()
    assert "applied migrations: 0001_core" in logs, logs  # migrated before listening
    assert "store sqlite:////data/tidings.db" in logs, logs  # settings from the image's env
    # Nothing of the node's process runs as root.
    top = engine.docker("top", container.name, "-o", "pid,user,args").stdout
    assert "tidings serve" in top and "root" not in top, top


async def test_docker_stop_drains_and_loses_nothing_across_the_restart(
        engine: Engine, container: Container) -> None:
    container.run()
    ledger = Ledger()
    traffic = Traffic(container.base.replace("http", "ws") + "/ws", ledger, pause=0.0)
    async with aiohttp.ClientSession() as http:
        await wait_healthy(http, container.base, what="container")
        accounts = await register(http, container.base, 6)
        try:
            await traffic.connect(accounts, 2)
            traffic.start_sending([a.user_id for a in accounts])
            await asyncio.sleep(1.5)  # chats in flight when the stop comes
            acked_before = ledger.acked()
            started = time.monotonic()
            await asyncio.to_thread(engine.docker, "stop", "-t", "20", container.name)
            stop_took = time.monotonic() - started
            assert container.inspect("{{.State.ExitCode}}") == "0"
            logs = container.logs()
            assert "SIGTERM received: shutting down" in logs, logs
            assert "draining: done" in logs and "(clean)" in logs, logs
            assert stop_took < 10, stop_took  # the drain, not Docker's SIGKILL, ended it
            engine.docker("start", container.name)  # same volume: same SQLite file
            await wait_healthy(http, container.base, what="restarted container")
            await traffic.finish_sending()
            await traffic.settle()
            figures = ledger.check()  # raises with the problems if anything was lost
        finally:
            await traffic.close()
    assert figures.acked > acked_before > 50, figures
    assert figures.lost == 0 and figures.duplicated == 0, figures
    assert figures.connections >= 2 * 12, figures  # every device came back after the stop


def test_sqlite_online_backup_of_a_running_container(engine: Engine,
                                                     container: Container) -> None:
    """docs/deployment.md's backup command, while the node serves."""
    container.run()
    asyncio.run(_register_one(container.base))
    backup = ("import sqlite3; src = sqlite3.connect('/data/tidings.db'); "
              "dst = sqlite3.connect('/data/backup.db'); src.backup(dst); dst.close()")
    engine.docker("exec", container.name, "python3", "-c", backup)
    check = ("import sqlite3; db = sqlite3.connect('/data/backup.db'); "
             "print(db.execute('PRAGMA integrity_check').fetchone()[0], "
             "db.execute('SELECT count(*) FROM users').fetchone()[0])")
    out = engine.docker("exec", container.name, "python3", "-c", check).stdout.split()
    assert out == ["ok", "1"], out


async def _register_one(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        await wait_healthy(http, base, what="container")
        await register(http, base, 1)
