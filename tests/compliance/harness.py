"""Shared pieces of the Autobahn (RFC 6455) compliance runs: start a node with its
test endpoints, run kosoku against it or against the SDK, and read the reports.

Used by ``tests/compliance/run.py`` (``make autobahn``) and by
``tests/compliance/test_autobahn.py`` (``make test``). Every process is started
here and stopped by its PID; everything binds to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BIN = Path(sys.executable).parent
KOSOKU = BIN / "kosoku"
TIDINGS = BIN / "tidings"
ECHO_PATH = "/test/echo"  # tidings.gateway.echo.ECHO_PATH
HOST = "127.0.0.1"
AUTOBAHN_MAX_MESSAGE = 16 * 2**20  # the largest message of the cases (9.1.6, 9.2.6)
COMPRESSION_CASES = ["12.*", "13.*"]
OUTCOMES = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def clean_env() -> dict[str, str]:
    """This environment without TIDINGS_* settings, so that only our flags apply."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}


class Node:
    """``tidings serve --test-endpoints`` in a subprocess, on a free port."""

    def __init__(self, workdir: Path, *, max_frame_bytes: int | None = None) -> None:
        self.workdir = workdir
        self.max_frame_bytes = max_frame_bytes
        self.log = workdir / "tidings.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 30.0) -> Node:
        """Start and wait for the node to listen (port 0: the node picks one)."""
        args = [str(TIDINGS), "serve", "--host", HOST, "--port", "0",
                "--database-url", f"sqlite:///{self.workdir / 'tidings.db'}",
                "--test-endpoints", "--log-level", "info"]
        if self.max_frame_bytes is not None:
            args += ["--max-frame-bytes", str(self.max_frame_bytes)]
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=clean_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(rb"listening on http://[\d.]+:(\d+)", self.log.read_bytes())
            if found:
                self.port = int(found.group(1))
                return self
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tidings did not start:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it has not exited within 10 s."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str) -> str:
        return f"ws://{HOST}:{self.port}{path}"


async def negotiates_deflate(url: str) -> bool:
    """Whether the WebSocket at ``url`` accepts a permessage-deflate offer."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url, compress=15) as ws:
        return bool(ws.compress)


def kosoku_args(mode: str, address: str, outdir: Path, *, include: list[str] | None = None,
                exclude: list[str] | None = None, parallelism: int = 4) -> list[str]:
    """The kosoku command line for one run."""
    args = [str(KOSOKU), "-m", mode, "-o", str(outdir)]
    if mode == "fuzzingclient":
        args += ["-p", str(parallelism)]
    for case in include or []:
        args += ["-i", case]
    for case in exclude or []:
        args += ["-x", case]
    return [*args, address]


@dataclass
class Run:
    """One kosoku run: its exit status, wall time and report directory."""

    name: str
    returncode: int
    seconds: float
    outdir: Path
    output: str = ""
    agent: str = ""
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self) -> Run:
        """Read index.json (one agent) and each case's own report."""
        index = json.loads((self.outdir / "index.json").read_text())
        if len(index) != 1:
            raise ValueError(f"{self.outdir}: expected one agent, got {list(index)}")
        (self.agent, entries), = index.items()
        for case_id, entry in entries.items():
            detail = json.loads((self.outdir / entry["reportfile"]).read_text())
            self.cases[case_id] = {**entry, "result": detail.get("result", ""),
                                   "resultClose": detail.get("resultClose", ""),
                                   "description": detail.get("description", "")}
        return self

    def counts(self) -> Counter[str]:
        return Counter(case["behavior"] for case in self.cases.values())

    def non_ok(self) -> dict[str, dict[str, Any]]:
        return {cid: c for cid, c in self.cases.items()
                if c["behavior"] != "OK" or c["behaviorClose"] != "OK"}

    def failed(self) -> list[str]:
        """Cases that did not pass: behaviour or closing behaviour not acceptable."""
        fine = {"OK", "NON-STRICT", "INFORMATIONAL"}
        return [cid for cid, c in self.cases.items()
                if c["behavior"] not in fine or c["behaviorClose"] not in fine]


async def run_fuzzingclient(name: str, address: str, outdir: Path, *,
                            include: list[str] | None = None,
                            exclude: list[str] | None = None, parallelism: int = 4,
                            timeout: float = 900.0) -> Run:
    """kosoku drives the server at ``address`` (host:port/path). Asynchronous, so that
    the server under test may run in this event loop."""
    args = kosoku_args("fuzzingclient", address, outdir, include=include, exclude=exclude,
                       parallelism=parallelism)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(timeout):
            output, _ = await proc.communicate()
    finally:
        await _reap(proc)
    assert proc.returncode is not None
    return Run(name, proc.returncode, time.monotonic() - started, outdir,
               output.decode(errors="replace"))


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` by its PID if it is still running (timeout, error), and wait."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()


async def run_fuzzingserver(name: str, outdir: Path, *, include: list[str] | None = None,
                            exclude: list[str] | None = None, timeout: float = 900.0,
                            **driver_options: Any) -> Run:
    """kosoku serves the cases; the SDK driver (in this process) runs each of them."""
    from tests.compliance import sdk_client

    args = kosoku_args("fuzzingserver", f"{HOST}:0", outdir, include=include, exclude=exclude)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            url = ""
            while not url:
                line = (await proc.stdout.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("kosoku fuzzingserver exited:\n" + "".join(output))
                output.append(line)
                found = re.search(r"listening on (ws://\S+)", line)
                url = found.group(1) if found else ""
            drain = asyncio.ensure_future(proc.stdout.read())
            await sdk_client.run(url, quiet=True, **driver_options)
            output.append((await drain).decode(errors="replace"))
            returncode = await proc.wait()
    finally:
        await _reap(proc)  # timed out or the driver failed
    return Run(name, returncode, time.monotonic() - started, outdir, "".join(output))
