"""Fixtures of the hook tests: the application backend as a real process, and nodes
whose hooks point at it (SQLite and PostgreSQL, as the other e2e tests)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import connect, http, server_factory  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


class Backend:
    """``tests/hooks/backend_app.py`` in a subprocess on a free port."""

    def __init__(self, fail_first: int = 2, delay: float = 0.0) -> None:
        env = {**os.environ, "FAIL_FIRST": str(fail_first), "WEBHOOK_DELAY": str(delay)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.hooks.backend_app"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and not line.startswith("PORT"):
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                line = self.proc.stdout.readline()
            if self.proc.poll() is not None:
                raise RuntimeError("the test backend exited")
        if not line.startswith("PORT"):
            self.stop()
            raise RuntimeError("the test backend did not start within 30 s")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> None:
        """Stop the process (by its PID) and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    """The backend process, shared by a module's tests (they reset it first)."""
    running = Backend()
    try:
        yield running
    finally:
        running.stop()
