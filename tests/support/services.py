"""Throwaway PostgreSQL and Redis servers for tests, on 127.0.0.1 and free ports.

Each server is a child process of the test run in its own session (process
group), so ``kill()`` can simulate a crash with SIGKILL by PID and ``stop()``
can make sure nothing it started is left behind. The binaries come from the
system: ``scripts/test-deps`` installs them.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Self

INSTALL_HINT = "run scripts/test-deps to install the test binaries"

_live: set[_Service] = set()


class ServiceError(RuntimeError):
    """A test service could not be found, started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in process group ``pgid``."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


class _Service:
    """A server process we start, stop and kill; subclasses say how to run it."""

    name = "service"

    def __init__(self) -> None:
        self.port = 0
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # subclass hooks

    def _prepare(self) -> None:
        """Create the on-disk state, once, before the first start."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _spawn_options(self) -> dict[str, Any]:
        return {}

    def _ready(self) -> bool:
        raise NotImplementedError

    def _after_first_start(self) -> None:
        """Runs once, when the server first accepts connections."""

    # lifecycle

    @property
    def pid(self) -> int:
        """PID of the running server process."""
        if self._proc is None:
            raise ServiceError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return
        first = self.dir is None
        if first:
            self.dir = Path(tempfile.mkdtemp(prefix=f"tidings-{self.name}-"))
            try:
                self._prepare()
            except BaseException:
                self.close()
                raise
        # A port picked free can be taken before the server binds it: retry once or twice.
        for attempt in range(3 if first else 1):
            if first:
                self.port = free_port()
            try:
                self._spawn_and_wait(timeout)
                break
            except ServiceError:
                if attempt == 2 or not first or "in use" not in self.log_tail():
                    raise
        if first:
            self._after_first_start()

    def _spawn_and_wait(self, timeout: float) -> None:
        assert self.dir is not None
        self._log = open(self.dir / f"{self.name}.log", "ab")  # noqa: SIM115 - kept open
        self._proc = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.dir,
            **self._spawn_options())
        _live.add(self)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                self._reap()
                raise ServiceError(f"{self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down cleanly (SIGKILL if it takes longer than ``timeout``)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(self._stop_signal())
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._reap()

    def kill(self) -> None:
        """Simulate a crash: SIGKILL the server by PID, then wait for its children."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
        self._reap()

    def restart(self, timeout: float = 30.0) -> None:
        """Stop (if running) and start again on the same port and data."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote, for error messages."""
        if self.dir is None:
            return ""
        try:
            text = (self.dir / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _stop_signal(self) -> int:
        return signal.SIGTERM

    def _reap(self) -> None:
        assert self._proc is not None
        pgid = self._proc.pid  # start_new_session: the server leads its own group
        self._proc.wait()
        # Children outlive a killed parent briefly; do not leave any behind.
        deadline = time.monotonic() + 10
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                break
            time.sleep(0.02)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        _live.discard(self)


def _postgres_bin_dir() -> Path:
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    if not found:
        raise ServiceError(
            f"no PostgreSQL server in /usr/lib/postgresql/*/bin: {INSTALL_HINT}")

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", Path(path).parent.parent.name))

    return Path(max(found, key=version)).parent


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who to run initdb/postgres as: they refuse to run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServiceError("running as root and neither 'postgres' nor 'nobody' exists")


_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresServer(_Service):
    """A private PostgreSQL cluster (``fsync=off``: tests only) with a ``tidings`` database."""

    name = "postgres"
    database = "tidings"

    def __init__(self) -> None:
        super().__init__()
        self.bin = _postgres_bin_dir()
        self._user = _unprivileged_user()

    @property
    def url(self) -> str:
        """URL of the ``tidings`` database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """URL of another database on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _env(self) -> dict[str, str]:
        # A clean environment: stray PG* variables must not redirect the tools.
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C",
                "HOME": str(self.dir)}

    def _spawn_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"env": self._env()}
        if self._user is not None:
            # Popen switches user itself, so the PID we hold is postgres's own.
            options.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return options

    def _prepare(self) -> None:
        assert self.dir is not None
        (self.dir / "socket").mkdir()
        if self._user is not None:
            for path in (self.dir, self.dir / "socket"):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        result = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
             "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
            cwd=self.dir, capture_output=True, check=False, **self._spawn_options())
        if result.returncode != 0:
            raise ServiceError(f"initdb failed:\n{result.stdout.decode()}"
                               f"{result.stderr.decode()}")

    def _command(self) -> list[str]:
        assert self.dir is not None
        return [str(self.bin / "postgres"), "-D", str(self.dir / "data"),
                "-p", str(self.port), "-k", str(self.dir / "socket"),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200"]

    def _stop_signal(self) -> int:
        return signal.SIGINT  # "fast" shutdown: roll back sessions, then exit

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", "postgres", "-t", "1"],
            env=self._env(), check=False)
        return result.returncode == 0

    def _after_first_start(self) -> None:
        self.create_database(self.database)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through ``psql`` as the superuser; return its output."""
        result = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-c", sql],
            env=self._env(), capture_output=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"psql failed: {result.stderr.decode()}")
        return result.stdout.decode()

    def create_database(self, database: str) -> str:
        """Create an empty database; return its URL."""
        # DDL takes no bind parameters, so the name is checked instead.
        if not _DB_NAME.match(database):
            raise ValueError(f"bad database name {database!r}")
        self.psql(f'CREATE DATABASE "{database}"')
        return self.url_for(database)

    def drop_database(self, database: str) -> None:
        """Drop a database, disconnecting anyone still in it."""
        if not _DB_NAME.match(database):
            raise ValueError(f"bad database name {database!r}")
        self.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class RedisServer(_Service):
    """A private redis-server: non-persistent, or with ``appendonly`` an append-only
    file synced on every write (what a Redis store needs to survive a restart)."""

    name = "redis"

    def __init__(self, *, appendonly: bool = False) -> None:
        super().__init__()
        self.appendonly = appendonly
        found = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
        if found is None:
            raise ServiceError(f"redis-server not found: {INSTALL_HINT}")
        self.binary = found

    @property
    def url(self) -> str:
        """URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        assert self.dir is not None
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--daemonize", "no",
                *(["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly
                  else ["--appendonly", "no"]),
                "--dir", str(self.dir)]

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@atexit.register
def _stop_leftovers() -> None:
    # A test run that dies before its fixtures finalise must not leak servers.
    for service in list(_live):
        service.kill()
        service.close()
