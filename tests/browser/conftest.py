"""A real headless Chromium, driven over the Chrome DevTools Protocol with aiohttp.

One browser per run (started on first use, always killed at the end, by its
process group); one fresh tab per test. ``console`` is that tab, already on the
Tidings node's own origin, so JavaScript run in it is what a person would type
in the DevTools console of a page served by the node.

Chromium is required, never optional: if it is missing or does not start, the
tests fail (``scripts/test-deps`` installs it; ``make test`` runs that).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

# The e2e fixtures (a node per test on each backend, raw clients), shared by import.
from tests.e2e.conftest import connect, http, server, server_factory  # noqa: F401
from tests.support.server import RunningServer

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT = 20.0  # until DevToolsActivePort appears
STOP_TIMEOUT = 5.0  # for a graceful exit after SIGTERM, before SIGKILL
CDP_TIMEOUT = 10.0  # any one DevTools command


@dataclass
class Chromium:
    """A running browser: its process and DevTools HTTP/WebSocket port."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        kept = [ln for ln in text.splitlines() if "dbus" not in ln]  # no system bus here
        return "\n".join(kept[-lines:])


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: with the pid, names a process unambiguously."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _processes_of(root: Path) -> set[tuple[int, str]]:
    """(pid, start time) of each live process of this browser instance: all of them,
    crashpad handlers included (in sessions of their own), name a path under ``root``."""
    needle = str(root).encode()
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and needle in (entry / "cmdline").read_bytes():
                started = _start_time(int(entry.name))
                if started is not None:
                    found.add((int(entry.name), started))
    return found


def _stop(proc: subprocess.Popen[bytes], root: Path) -> None:
    """Kill the browser and everything it started: SIGTERM to the browser, SIGKILL to
    its process group, then SIGKILL by PID to any helper outside the group. Wait
    (bounded) until they are all gone, reaped zombies included."""
    ours = _processes_of(root)
    pgid = proc.pid  # start_new_session: the browser leads its own process group
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # a clean exit: it tells its helpers to quit
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):  # stragglers, or a hung browser
        os.killpg(pgid, signal.SIGKILL)
    proc.wait(timeout=STOP_TIMEOUT)
    for pid, _ in _processes_of(root):  # e.g. crashpad, in sessions of its own
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Orphans are reaped by init, a little later; leave nothing behind for the next
    # command (pgrep would list the zombies), but do not fail a run over them.
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and any(
            _start_time(pid) == started for pid, started in ours):
        time.sleep(0.05)


def _wait_for_port(proc: subprocess.Popen[bytes], active_port: Path, log_path: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{CHROMIUM} exited with {proc.returncode} before DevTools was up:\n"
                        f"{log_path.read_text(errors='replace')[-2000:]}", pytrace=False)
        with contextlib.suppress(OSError, ValueError, IndexError):
            first = active_port.read_text().splitlines()[0]  # "<port>\n/devtools/browser/<id>"
            if first.strip():
                return int(first)
        time.sleep(0.05)
    pytest.fail(f"{CHROMIUM} did not write {active_port} within {START_TIMEOUT:.0f} s:\n"
                f"{log_path.read_text(errors='replace')[-2000:]}", pytrace=False)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """Headless Debian chromium with remote debugging on a free port."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium. "
                    "Run scripts/test-deps (or apt-get install chromium).", pytrace=False)
    root = tmp_path_factory.mktemp("chromium")
    profile, home, log_path = root / "profile", root / "home", root / "chromium.log"
    home.mkdir()
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
    # If this process dies without tearing down (kill -9), the kernel kills the
    # browser too; setpriv execs, so the browser keeps its PID.
    setpriv = shutil.which("setpriv")
    if setpriv:
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    # HOME: crash reports and the launcher's housekeeping stay in the temp dir.
    env = {**os.environ, "HOME": str(home)}
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except OSError as exc:
            pytest.fail(f"cannot start {CHROMIUM}: {exc}", pytrace=False)
    try:
        port = _wait_for_port(proc, profile / "DevToolsActivePort", log_path)
        yield Chromium(proc, port, log_path)
    finally:
        _stop(proc, root)
        shutil.rmtree(profile, ignore_errors=True)


class CdpError(Exception):
    """A DevTools command failed, or JavaScript threw."""


class Page:
    """One tab, driven over its DevTools WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.console: list[str] = []  # console.* output and uncaught exceptions
        self.errors: list[str] = []  # console.error, uncaught exceptions, browser log errors
        self.requests: list[str] = []  # the URL of every request the tab made
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    future = self._pending.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                    continue
                method, params = data.get("method", ""), data.get("params", {})
                if method == "Runtime.consoleAPICalled":
                    text = " ".join(str(a.get("value", a.get("description")))
                                    for a in params.get("args", []))
                    self.console.append(text)
                    if params.get("type") in ("error", "assert"):
                        self.errors.append(text)
                elif method == "Runtime.exceptionThrown":
                    self.console.append(str(params.get("exceptionDetails")))
                    self.errors.append(str(params.get("exceptionDetails")))
                elif method == "Network.requestWillBeSent":
                    self.requests.append(params["request"]["url"])
                elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                    entry = params["entry"]
                    self.errors.append(f"{entry.get('source')}: {entry.get('text')} "
                                       f"{entry.get('url', '')}")
                for future in self._events.pop(method, []):
                    if not future.done():
                        future.set_result(params)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CdpError("DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   timeout: float = CDP_TIMEOUT) -> dict[str, Any]:
        """Run one DevTools command; return its result."""
        if self._reader.done():
            raise CdpError(f"{method}: the DevTools connection is closed")
        id_ = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[id_] = future
        await self.ws.send_str(json.dumps({"id": id_, "method": method, "params": params or {}}))
        try:
            async with asyncio.timeout(timeout):
                reply = await future
        finally:
            self._pending.pop(id_, None)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next ``method`` event; call before causing it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._events.setdefault(method, []).append(future)
        return future

    async def goto(self, url: str, timeout: float = CDP_TIMEOUT) -> None:
        """Navigate and wait for the load event."""
        loaded = self.event("Page.loadEventFired")
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")
        async with asyncio.timeout(timeout):
            await loaded

    async def run(self, expression: str, timeout: float = CDP_TIMEOUT) -> Any:
        """Evaluate like the DevTools console (top-level await, globals persist
        between calls); await the result and return it as JSON data."""
        result = await self.send("Runtime.evaluate", {
            "expression": expression, "replMode": True, "awaitPromise": True,
            "returnByValue": True, "userGesture": True,
        }, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            thrown = details.get("exception", {})
            raise CdpError(f"JavaScript threw: {thrown.get('description') or details}\n"
                           f"console: {self.console}")
        return result["result"].get("value")

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def browser_page(chromium: Chromium) -> AsyncIterator[Page]:
    """A fresh tab of the shared browser, closed after the test."""
    if chromium.proc.poll() is not None:
        pytest.fail(f"chromium died (exit {chromium.proc.returncode}):\n{chromium.log_tail()}",
                    pytrace=False)
    timeout = aiohttp.ClientTimeout(total=CDP_TIMEOUT)  # each HTTP call, not the socket
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{chromium.base}/json/new?about:blank", timeout=timeout) as r:
            assert r.status == 200, await r.text()
            target = await r.json()
        async with asyncio.timeout(CDP_TIMEOUT):
            ws = await session.ws_connect(
                f"ws://127.0.0.1:{chromium.port}/devtools/page/{target['id']}", max_msg_size=0)
        page = Page(ws)
        try:
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            yield page
        finally:
            await page.close()
            async with session.get(f"{chromium.base}/json/close/{target['id']}",
                                   timeout=timeout) as r:
                await r.read()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A node on SQLite, for a page's tests (a module may override it with settings)."""
    started = await RunningServer(f"sqlite:///{tmp_path / 'pages.db'}").start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def console(browser_page: Page, server: RunningServer) -> Page:  # noqa: F811
    """A tab on the node's own origin (``/api/health``): its DevTools console."""
    await browser_page.goto(server.http_url + "/api/health")
    location = await browser_page.run("location.origin")
    assert location == server.http_url, location
    return browser_page
