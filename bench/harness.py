"""Processes of a benchmark run: pinned servers, the C load generator, CPU and RSS.

Servers run on core 0 and everything that makes load on core 1 (``taskset``), so a
figure says what one core of server does. Every process is started here and
stopped here by its PID (its process group, for servers that fork).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVER_CORE, LOAD_CORE = "0", "1"
WSLOAD_SRC = BENCH / "loadgen" / "wsload.c"
WSLOAD_BIN = BENCH / "loadgen" / "wsload"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (``uptime``): other work on the machine."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_ticks(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def user_ticks(pid: int) -> float:
    """User-space CPU seconds of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return int(fields[11]) / os.sysconf("SC_CLK_TCK")


def run_wait(pid: int) -> tuple[float, float]:
    """Seconds a process's threads ran and waited on a run queue (``schedstat``).

    Waiting means the core was busy with something else: on a shared machine that
    is other people's work, and it is why a server at 30 % CPU can still be slow.
    """
    ran = waited = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0, 0.0
    for tid in tasks:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:
            continue
        ran += int(fields[0]) / 1e9
        waited += int(fields[1]) / 1e9
    return ran, waited


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


class Server:
    """A server under test, pinned to the server core, in its own process group."""

    def __init__(self, name: str, argv: list[str], port: int, *, env: dict[str, str] | None = None,
                 log: Path, cwd: Path | None = None, core: str = SERVER_CORE) -> None:
        self.name, self.port = name, port
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", core, *argv], stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
            preexec_fn=_raise_nofile)
        self.log_path = log

    def ready(self, timeout: float = 30.0) -> Server:
        """Wait until the server listens; raise with its log if it died."""
        try:
            wait_port(self.port, timeout)
        except TimeoutError:
            tail = self.log_tail()  # before stop(), which closes the log
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{tail}") from None
        return self

    @property
    def measured_pid(self) -> int:
        """The process whose CPU and RSS count: nginx's worker, else the server itself."""
        kids = children(self.proc.pid)
        return kids[0] if self.name.startswith("nchan") and kids else self.proc.pid

    @property
    def measured_pids(self) -> list[int]:
        """Every process whose CPU counts (one here; a cluster's nodes and bus)."""
        return [self.measured_pid]

    @property
    def ports(self) -> list[int]:
        """The ports subscribers are spread over (one here; one per node of a cluster)."""
        return [self.port]

    def log_tail(self, n: int = 20) -> str:
        """The end of the server's output."""
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after 10 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def nofile_limit() -> int:
    """The most file descriptors a process may open here (the hard RLIMIT_NOFILE)."""
    import resource

    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def _raise_nofile() -> None:
    import resource

    hard = nofile_limit()  # only root outside a container may raise the hard limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def build_wsload() -> Path:
    """Compile the C load generator if its binary is missing or older than its source."""
    if not WSLOAD_BIN.exists() or WSLOAD_BIN.stat().st_mtime < WSLOAD_SRC.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-Wall", "-o", str(WSLOAD_BIN), str(WSLOAD_SRC)], check=True)
    return WSLOAD_BIN


class LoadGen:
    """The C load generator on the load core, driven by one-line commands."""

    def __init__(self, port: int, *, conns: int, path: str = "/", mode: str = "fanout",
                 init: Path | None = None, ready_match: str | None = None,
                 pong: tuple[str, str] | None = None, keepalive_hex: str | None = None,
                 keepalive_every: float = 20.0, src_addrs: int = 1, window: int = 1,
                 ports: list[int] | None = None, connect_parallel: int = 256,
                 rate: float = 0.0, ready_hex: str | None = None,
                 reconnect: tuple[float, float] | None = None,
                 ready_parallel: int = 0, acks: bool = False) -> None:
        where = ["--ports", ",".join(map(str, ports))] if ports else ["--port", str(port)]
        argv = [str(build_wsload()), *where, "--path", path, "--conns", str(conns),
                "--mode", mode, "--src-addrs", str(src_addrs), "--window", str(window)]
        argv += ["--connect-parallel", str(connect_parallel)]
        if rate:
            argv += ["--rate", str(rate)]
        if acks:  # chat: answer every push with a delivery ack
            argv += ["--acks", "1"]
        if init is not None:
            argv += ["--init", str(init)]
        if ready_match:
            argv += ["--ready-match", ready_match]
        if ready_parallel:  # at most this many sockets opening or not yet ready
            argv += ["--ready-parallel", str(ready_parallel)]
        if ready_hex:
            argv += ["--ready-hex", ready_hex]
        if reconnect:  # (first wait, longest wait) in seconds: reopen closed connections
            argv += ["--reconnect", str(reconnect[0]), "--reconnect-max", str(reconnect[1])]
        if pong:
            argv += ["--pong-match", pong[0], "--pong-reply", pong[1]]
        if keepalive_hex:
            argv += ["--keepalive-hex", keepalive_hex, "--keepalive-every", str(keepalive_every)]
        self.conns = conns
        self.proc = subprocess.Popen(["taskset", "-c", LOAD_CORE, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1,
                                     preexec_fn=_raise_nofile)

    def command(self, cmd: str) -> dict[str, Any]:
        """Send one command, return its JSON answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited ({self.proc.poll()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def wait_ready(self, timeout: float) -> tuple[float, dict[str, Any]]:
        """Wait until every connection is ready (or failed); return seconds taken and status."""
        start = time.monotonic()
        while True:
            status = self.command("status")
            if status["ready"] + status["failed"] + status["closed"] >= self.conns:
                return time.monotonic() - start, status
            if time.monotonic() - start > timeout:
                return time.monotonic() - start, status
            time.sleep(0.05)

    def stop(self) -> None:
        """Close every connection and exit."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "node": _output(["node", "--version"]), "nginx": _output(["nginx", "-v"])}


def commit() -> str:
    """The commit the run measured (with ``+dirty`` if the tree has changes)."""
    rev = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return rev + ("+dirty" if dirty else "")


def _output(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) \
        else ""


class CpuMeter:
    """CPU use of the server and the load generator over one measured interval.

    ``server_pid`` may be a list (the nodes of a cluster and its bus): their figures
    are added up, so 150 % means one and a half cores' worth.
    """

    def __init__(self, server_pid: int | list[int], loadgen_pid: int) -> None:
        self._s = [server_pid] if isinstance(server_pid, int) else list(server_pid)
        self._l = loadgen_pid
        self._t0 = time.monotonic()
        self._cpu, self._user, self._waited = self._server()
        self._lcpu = cpu_ticks(loadgen_pid)
        _, self._lwaited = run_wait(loadgen_pid)

    def _server(self) -> tuple[float, float, float]:
        return (sum(cpu_ticks(p) for p in self._s), sum(user_ticks(p) for p in self._s),
                sum(run_wait(p)[1] for p in self._s))

    def read(self) -> dict[str, float]:
        """Percent of one core since construction: server total/user/waiting, loadgen."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        cpu, user, waited = self._server()
        return {
            "server_cpu_pct": round(100 * (cpu - self._cpu) / wall, 1),
            "server_user_cpu_pct": round(100 * (user - self._user) / wall, 1),
            "server_cpu_wait_pct": round(100 * (waited - self._waited) / wall, 1),
            "loadgen_cpu_pct": round(100 * (cpu_ticks(self._l) - self._lcpu) / wall, 1),
            "loadgen_cpu_wait_pct": round(100 * (run_wait(self._l)[1] - self._lwaited) / wall, 1),
        }
