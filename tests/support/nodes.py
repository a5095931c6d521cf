"""Tidings nodes as separate OS processes (``tidings serve``), for cluster tests.

Each node runs in its own session, so ``kill()`` is a real ``kill -9`` by PID and
``stop()`` a SIGTERM; both reap the process. Logs go to a file per node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

from tests.support.services import free_port

TIDINGS = str(Path(sys.executable).with_name("tidings"))


class NodeProcess:
    """One ``tidings serve`` process on 127.0.0.1."""

    def __init__(self, name: str, log_dir: Path, env: dict[str, str],
                 args: list[str] | None = None, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.log_path = log_dir / f"{name}.log"
        self._env = {**os.environ, **env}
        self._args = args or []
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> NodeProcess:
        """Spawn the node and wait until ``/api/health`` answers 200."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._proc = subprocess.Popen(
            [TIDINGS, "serve", "--host", "127.0.0.1", "--port", str(self.port), *self._args],
            env=self._env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self._proc.poll() is not None:
                self._reap()
                raise RuntimeError(f"node {self.name} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"node {self.name} not healthy:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.http_url + "/api/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """``kill -9``: no goodbye to clients, the registry or the bus."""
        if self.running:
            os.kill(self.pid, signal.SIGKILL)
        self._reap()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``."""
        if self.running:
            os.kill(self.pid, signal.SIGTERM)
            try:
                assert self._proc is not None
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILLed above
                self._proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
