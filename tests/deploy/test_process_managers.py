"""PM2 (pinned, from npm) runs deploy/pm2/ecosystem.config.js and restarts a killed
instance; the systemd unit's command serves with --workers and drains on its KillSignal;
deploy/healthcheck.py gives every one of them an exit code from /api/health."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.engine import REPO
from tests.support.services import free_port

pytestmark = pytest.mark.slow

DEPLOY = REPO / "deploy"
PM2_DIR = DEPLOY / "pm2"
HEALTHCHECK = DEPLOY / "healthcheck.py"
BIN = Path(sys.executable).parent  # this venv's bin/: tidings is installed there


def healthcheck(*args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTHCHECK), *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports (PM2's increment_var numbers them)."""
    for _ in range(50):
        first = free_port()
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with contextlib.closing(__import__("socket").socket()) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no run of free ports")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def test_healthcheck_exit_codes(tmp_path: Path) -> None:
    refused = healthcheck(f"http://127.0.0.1:{free_port()}/api/health", "--timeout", "2")
    assert refused.returncode == 1 and "unhealthy:" in refused.stderr, refused
    assert "Connection refused" in refused.stderr, refused
    bad = healthcheck("not a url")
    assert bad.returncode == 1 and "unhealthy: not a url" in bad.stderr, bad
    env = {**os.environ, "TIDINGS_HOST": "0.0.0.0", "TIDINGS_PORT": "1",
           "TIDINGS_TLS_CERT_FILE": "x.pem"}
    assert "https://127.0.0.1:1/api/health" in healthcheck(env=env).stderr


@pytest.fixture(scope="module")
def pm2() -> Path:
    """deploy/pm2's pinned pm2, installed with `npm ci` from its lock file."""
    if shutil.which("npm") is None:
        pytest.fail("node and npm are needed: run scripts/test-deps")
    if not (PM2_DIR / "node_modules" / "pm2" / "package.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=PM2_DIR, check=True, timeout=600)
    version = json.loads((PM2_DIR / "node_modules/pm2/package.json").read_text())["version"]
    assert version == json.loads((PM2_DIR / "package.json").read_text())["dependencies"]["pm2"]
    return PM2_DIR / "node_modules" / ".bin" / "pm2"


@pytest.fixture
def pm2_env(tmp_path: Path, redis_url: str) -> Iterator[dict[str, str]]:
    """A private PM2 home; at the end `pm2 kill`, then SIGKILL by PID whatever is left."""
    home = tmp_path / "pm2"
    env = {**os.environ, "PM2_HOME": str(home), "TIDINGS_BIN": str(BIN / "tidings"),
           "TIDINGS_PORT": str(free_ports(3)), "TIDINGS_INSTANCES": "3",
           "TIDINGS_DATABASE_URL": f"sqlite:///{tmp_path / 'pm2.db'}",
           "TIDINGS_BUS_URL": redis_url, "TIDINGS_SHUTDOWN_TIMEOUT": "5"}
    seen: list[int] = []
    try:
        yield env
    finally:
        with contextlib.suppress(OSError, ValueError):
            seen.append(int((home / "pm2.pid").read_text()))
        with contextlib.suppress(Exception):
            out = subprocess.run([str(PM2_DIR / "node_modules/.bin/pm2"), "jlist"], env=env,
                                 capture_output=True, text=True, timeout=30).stdout
            seen += [p["pid"] for p in json.loads(out) if p.get("pid")]
        subprocess.run([str(PM2_DIR / "node_modules/.bin/pm2"), "kill"], env=env,
                       capture_output=True, timeout=120, check=False)
        for pid in wait_gone(seen, 20):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_pm2_runs_the_ecosystem_and_restarts_a_killed_instance(
        pm2: Path, pm2_env: dict[str, str]) -> None:
    def run(*args: str) -> str:
        proc = subprocess.run([str(pm2), *args], cwd=PM2_DIR, env=pm2_env, capture_output=True,
                              text=True, timeout=120, check=False)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    def instances() -> list[dict[str, object]]:
        return sorted(json.loads(run("jlist")), key=lambda p: int(p["pm_id"]))

    first = int(pm2_env["TIDINGS_PORT"])
    urls = [f"http://127.0.0.1:{first + i}/api/health" for i in range(3)]
    run("start", "ecosystem.config.js")
    for url in urls:  # one node per instance, on consecutive ports
        check = healthcheck(url, "--wait", "60")
        assert check.returncode == 0, check
    before = instances()
    assert [p["pm2_env"]["status"] for p in before] == ["online"] * 3
    victim = before[1]
    os.kill(int(victim["pid"]), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        now = {p["pm_id"]: p for p in instances()}[victim["pm_id"]]
        env = now["pm2_env"]
        if now["pid"] and now["pid"] != victim["pid"] and env["status"] == "online":
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.5)
    assert env["restart_time"] >= 1
    for url in urls:  # the restarted instance serves again, on its own port
        check = healthcheck(url, "--wait", "60")
        assert check.returncode == 0, check


def _unit() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "systemd/tidings.service").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[key] = value
    return values


def test_systemd_unit_verifies_and_its_command_serves_with_workers_and_drains(
        tmp_path: Path, redis_url: str) -> None:
    unit = _unit()
    assert unit["KillSignal"] == "SIGTERM" and "--workers" in unit["ExecStart"]
    env_file = tmp_path / "tidings.env"
    settings = dict(line.split("=", 1) for line in (DEPLOY / "systemd/tidings.env").read_text()
                    .splitlines() if line and not line.startswith("#"))
    port = free_port()
    settings.update(TIDINGS_PORT=str(port), TIDINGS_BUS_URL=redis_url,
                    TIDINGS_DATABASE_URL=f"sqlite:///{tmp_path / 'unit.db'}",
                    TIDINGS_SHUTDOWN_TIMEOUT="5")
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def here(command: str) -> list[str]:  # the unit's paths on this machine
        command = command.replace("/opt/tidings/bin/tidings-healthcheck",
                                  f"{sys.executable} {HEALTHCHECK}")
        return shlex.split(command.replace("/opt/tidings/bin/", f"{BIN}/"))

    if shutil.which("systemd-analyze"):
        text = (DEPLOY / "systemd/tidings.service").read_text()
        text = text.replace("/opt/tidings/bin/tidings-healthcheck", str(HEALTHCHECK))
        text = text.replace("/opt/tidings/bin/", f"{BIN}/")
        text = text.replace("/etc/tidings/tidings.env", str(env_file))
        (tmp_path / "tidings.service").write_text(text)
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no",
                                 str(tmp_path / "tidings.service")],
                                capture_output=True, text=True, timeout=60, check=False)
        assert "tidings.service" not in verify.stdout + verify.stderr, verify

    # What systemd does: ExecStart with the EnvironmentFile, ExecStartPost, then on stop
    # KillSignal to the main process (KillMode=mixed) and TimeoutStopSec to exit.
    log = open(tmp_path / "unit.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(here(unit["ExecStart"]), env={**os.environ, **settings},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=tmp_path)
    try:
        post = subprocess.run(here(unit["ExecStartPost"]), env={**os.environ, **settings},
                              capture_output=True, text=True, timeout=120, check=False)
        assert post.returncode == 0, (post, (tmp_path / "unit.log").read_text())
        workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                   .read_text().split()]
        assert len(workers) == 2, workers
        deadline = time.monotonic() + 60  # healthy = one worker up; wait for the other
        while (tmp_path / "unit.log").read_text().count("Tidings listening") < 2:
            assert time.monotonic() < deadline, (tmp_path / "unit.log").read_text()
            time.sleep(0.2)
        proc.send_signal(getattr(signal, unit["KillSignal"]))
        code = proc.wait(float(unit["TimeoutStopSec"]))
        assert code == 0, (tmp_path / "unit.log").read_text()
        assert not wait_gone(workers, 10)
        text = (tmp_path / "unit.log").read_text()
        assert text.count("draining: done") == 2 and text.count("(clean)") == 2, text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
