"""A private Docker engine for the deployment tests, and the images they run.

``dockerd`` runs as a child of the test run with its own socket, exec root and pid
file, ``--bridge=none --iptables=false`` (no docker0, no private-range address: every
container uses the host's network, so all traffic stays on 127.0.0.1), and is stopped
by PID at the end. Its data root and the Debian base image live in a cache directory
outside the repository (``$TIDINGS_DEPLOY_CACHE``, default ``/var/cache/tidings-deploy``)
so that debootstrap (about 70 s) and the image layers are made once per machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).parents[2]
CACHE = Path(os.environ.get("TIDINGS_DEPLOY_CACHE", "/var/cache/tidings-deploy"))
RUN_DIR = Path("/run/tidings-deploy")  # short: containerd's socket paths must fit 108 bytes
BASE_IMAGE = "tidings-test/bookworm:base"
TIDINGS_IMAGE = "tidings-test/tidings:latest"
STAND_INS = {  # the official images a user pulls, made here from Debian's packages
    "postgres": "tidings-test/postgres:15",
    "redis": "tidings-test/redis:7",
    "nginx": "tidings-test/nginx:1.22",
}


class EngineUnavailable(RuntimeError):
    """dockerd could not start here (no privileges, no cgroups, no overlay...)."""


def _docker_cli() -> str:
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).exists():
            return candidate
    raise EngineUnavailable("no docker client: run scripts/test-deps")


class Engine:
    """dockerd started by us; :meth:`docker` runs the client against it."""

    def __init__(self) -> None:
        self.socket = RUN_DIR / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}",
                    "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
        self.cli = _docker_cli()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = CACHE / "dockerd.log"
        self.timings: dict[str, float] = {}

    def start(self, timeout: float = 60.0) -> None:
        """Start dockerd and wait until it answers; EngineUnavailable if it cannot."""
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not Path(dockerd).exists():
            raise EngineUnavailable("dockerd is not installed: run scripts/test-deps")
        if os.geteuid() != 0:
            raise EngineUnavailable("dockerd needs root here (no rootless setup)")
        CACHE.mkdir(parents=True, exist_ok=True)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        pidfile = RUN_DIR / "dockerd.pid"
        self._stop_stale(pidfile)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [dockerd, "--bridge=none", "--iptables=false", "--ip-masq=false",
                 "--data-root", str(CACHE / "docker"), "--exec-root", str(RUN_DIR / "exec"),
                 "--pidfile", str(pidfile), "-H", f"unix://{self.socket}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                raise EngineUnavailable(f"dockerd exited at start:\n{self.log_tail()}")
            if self.socket.exists() and self.docker("info", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise EngineUnavailable(f"dockerd not ready in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    @staticmethod
    def _stop_stale(pidfile: Path) -> None:
        """A dockerd left by an interrupted run of ours (same pid file) is stopped first."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            if "dockerd" in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGTERM)
                for _ in range(300):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.1)

    def stop(self) -> None:
        """Remove our containers, then stop dockerd (and the containerd it runs) by PID."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
            # Untagged layers of older Dockerfiles pile up in the cache: a week is enough.
            self.docker("image", "prune", "-f", "--filter", "until=168h", check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        """The end of dockerd's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def docker(self, *args: str, check: bool = True, timeout: float = 900,
               input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this engine; raise with its output if it fails."""
        proc = subprocess.run([self.cli, *args], env=self.env, capture_output=True,
                              timeout=timeout, check=False, text=input is None,
                              input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{_text(proc.stdout)[-3000:]}\n{_text(proc.stderr)[-3000:]}")
        return proc  # type: ignore[return-value]

    def has_image(self, name: str) -> bool:
        """Whether the engine holds image ``name``."""
        return self.docker("image", "inspect", name, check=False).returncode == 0

    def base_image(self) -> str:
        """Debian bookworm (minbase) as an image: debootstrap once, then ``docker import``."""
        if self.has_image(BASE_IMAGE):
            return BASE_IMAGE
        started = time.monotonic()
        tarball = CACHE / "bookworm-minbase.tar"
        if not tarball.exists():
            rootfs = CACHE / "rootfs.tmp"
            shutil.rmtree(rootfs, ignore_errors=True)
            subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs)],
                           check=True, capture_output=True, timeout=900)
            subprocess.run(["tar", "-C", str(rootfs), "-cf", f"{tarball}.tmp", "."], check=True)
            os.replace(f"{tarball}.tmp", tarball)
            shutil.rmtree(rootfs, ignore_errors=True)
        self.docker("import", str(tarball), BASE_IMAGE)
        self.timings["base image"] = time.monotonic() - started
        return BASE_IMAGE

    def build(self, tag: str, dockerfile: Path, context: Path, **build_args: str) -> float:
        """``docker build --network host``; the seconds it took."""
        args = ["build", "--network", "host", "-t", tag, "-f", str(dockerfile)]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        started = time.monotonic()
        self.docker(*args, str(context), timeout=1800)
        took = time.monotonic() - started
        self.timings[f"build {tag}"] = took
        return took

    def image_size(self, name: str) -> int:
        """Bytes of image ``name`` (all its layers)."""
        return int(self.docker("image", "inspect", "-f", "{{.Size}}", name).stdout.strip())


def extra_ca_certs() -> str:
    """This machine's added CA certificates (a TLS-intercepting proxy's), for pip in builds."""
    return "\n".join(p.read_text().strip() for p in sorted(
        Path("/usr/local/share/ca-certificates").glob("*.crt")))


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""
