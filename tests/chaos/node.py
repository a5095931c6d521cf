"""A Tidings node as a real child process (``python -m tidings serve``), so that tests
can crash it with SIGKILL, drain it with SIGTERM and start it again on the same
port and database."""

from __future__ import annotations

import http.client
import os
import signal
import sys
import time
from typing import Any

from tests.support.services import ServiceError, _Service


class NodeProcess(_Service):
    """``tidings serve`` on 127.0.0.1 and a free port (kept across restarts)."""

    name = "tidings"

    def __init__(self, database_url: str, **settings: Any) -> None:
        super().__init__()
        self.database_url = database_url
        self.settings = {"log_level": "info", **settings}
        self.exit_code: int | None = None

    @property
    def http_url(self) -> str:
        """Base HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The ``/ws`` endpoint."""
        return f"ws://127.0.0.1:{self.port}/ws"

    def _command(self) -> list[str]:
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in self.settings.items()]
        return [sys.executable, "-m", "tidings", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--database-url", self.database_url, *flags]

    def _spawn_options(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        return {"env": env}

    def _ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/api/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def terminate(self, timeout: float = 60.0) -> float:
        """Send SIGTERM and wait for the exit; return the seconds it took.

        :attr:`exit_code` holds the exit status. Raise :class:`ServiceError` if
        the node is still running after ``timeout`` (it is then killed).
        """
        if self._proc is None:
            raise ServiceError("tidings is not running")
        started = time.monotonic()
        self._proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self._proc.wait(timeout)
        except Exception:
            self.kill()
            raise ServiceError(f"no exit {timeout}s after SIGTERM:\n{self.log_tail()}") from None
        elapsed = time.monotonic() - started
        self._reap()
        return elapsed

    def log_text(self) -> str:
        """Everything the node wrote so far, over all its runs."""
        if self.dir is None:
            return ""
        return (self.dir / f"{self.name}.log").read_text(errors="replace")
