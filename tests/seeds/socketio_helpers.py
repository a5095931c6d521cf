"""Helpers of the seed-literal Socket.IO tests: a real ``tidings serve`` process on a
fresh SQLite or PostgreSQL database with seed 000's demo building and two users, and
the real npm ``socket.io-client`` driven by ``seed_client.mjs`` (Node)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.nodes import TIDINGS, NodeProcess

HERE = Path(__file__).parent
SIO_DIR = HERE.parent / "desks" / "node"  # package.json pinning socket.io-client
PASSWORD = "seed-test-password"


def install_socketio_client() -> None:
    """``npm ci`` the pinned socket.io-client once (shared with tests/desks)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise AssertionError("node and npm are needed: apt-get install nodejs npm")
    if not (SIO_DIR / "node_modules" / "socket.io-client" / "package.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=SIO_DIR, check=True, timeout=300)


def _cli(*args: str, database_url: str) -> str:
    done = subprocess.run([TIDINGS, *args, "--database-url", database_url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


class SeedNode:
    """``tidings serve`` with the demo building (desks ``Engineering-001`` …) and users
    ``alice`` and ``bob`` with their tokens and ids."""

    def __init__(self, database_url: str, log_dir: Path, env: dict[str, str] | None = None,
                 demo: bool = True) -> None:
        if demo:
            _cli("desks", "demo", "--floors", "1", "--desks-per-floor", "40",
                 database_url=database_url)
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        for name in ("alice", "bob"):
            made = _cli("user", "add", name, "--password", PASSWORD, database_url=database_url)
            self.ids[name] = int(made.rsplit(" ", 1)[1])
            self.tokens[name] = _cli("token", "create", "--user", name,
                                     database_url=database_url).splitlines()[0]
        self.process = NodeProcess("seed000", log_dir, {"TIDINGS_DATABASE_URL": database_url,
                                                        "TIDINGS_LOG_LEVEL": "warning",
                                                        **(env or {})}).start()

    @property
    def url(self) -> str:
        return self.process.http_url

    def stop(self) -> None:
        self.process.stop()

    async def rest(self, method: str, path: str, who: str = "alice",
                   **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        async with aiohttp.ClientSession() as http, \
                http.request(method, self.url + path, headers=headers, **kwargs) as r:
            return r.status, await r.json(content_type=None)

    async def metrics_json(self) -> dict[str, Any]:
        _, body = await self.rest("GET", "/api/metrics")
        assert isinstance(body, dict)
        return body


class SeedClient:
    """One ``node seed_client.mjs``: the real socket.io-client."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []
        self._ids = 0
        self._pending: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, url: str, options: dict[str, Any]) -> SeedClient:
        proc = await asyncio.create_subprocess_exec(
            "node", str(HERE / "seed_client.mjs"), url, json.dumps(options),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sys.stderr)
        return cls(proc)

    async def next(self, match: Callable[[dict[str, Any]], bool],
                   timeout: float = 20.0) -> dict[str, Any]:
        """The first line, seen before or next, that ``match`` accepts (consumed)."""
        for line in self._pending:
            if match(line):
                self._pending.remove(line)
                return line
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"client exited; saw {self.seen}")
                line = json.loads(raw)
                self.seen.append(line)
                if match(line):
                    return line
                self._pending.append(line)

    async def connected(self) -> dict[str, Any]:
        """Wait for ``connect`` (fail on ``connect_error``)."""
        line = await self.next(lambda e: e.get("event") in ("connect", "connect_error"))
        assert line["event"] == "connect", line
        return line

    def emit(self, event: str, *args: Any) -> None:
        """``socket.emit(event, ...args)`` without an acknowledgement."""
        self._send({"event": event, "args": list(args), "ack": False})

    async def call(self, event: str, *args: Any, timeout: float = 20.0) -> Any:
        """``socket.emit(event, ...args, ack)`` → what the server acknowledged."""
        self._ids += 1
        wanted = self._ids
        self._send({"id": wanted, "event": event, "args": list(args), "ack": True})
        return (await self.next(lambda e: e.get("id") == wanted, timeout))["ack"]

    async def event(self, name: str, timeout: float = 20.0,
                    where: Callable[[Any], bool] = lambda _: True) -> Any:
        """The payload of the next ``name`` event ``where`` accepts."""
        line = await self.next(lambda e: e.get("event") == name and "id" not in e
                               and where(e.get("payload")), timeout)
        return line["payload"]

    def _send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
