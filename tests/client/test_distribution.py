"""tidings-client as users get it: its wheel, built from clients/python and installed
alone into a fresh venv (no server dependency there), runs the example against a real
``tidings serve``. The server's own dependency on it is checked here too."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import tidings_client
from tests.client.node import node  # noqa: F401  (the fixture)
from tests.support.nodes import NodeProcess

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
SERVER_ONLY = ["asyncpg", "redis", "socketio", "argon2", "cryptography", "jwt", "tidings"]

pytestmark = pytest.mark.slow


def _run(*argv: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_the_server_depends_on_this_very_client() -> None:
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"tidings-client=={tidings_client.__version__}" in server["dependencies"]
    client = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    deps = [d.split(">")[0].split("=")[0] for d in client["dependencies"]]
    assert deps == ["aiohttp", "msgspec"]


def test_the_wheel_installs_alone_and_runs_the_example(
        tmp_path: Path, node: NodeProcess) -> None:  # noqa: F811
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    source = tmp_path / "source"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    built = _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--wheel-dir", tmp_path / "dist", source)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("tidings_client-*.whl")
    assert wheel.name.startswith(f"tidings_client-{tidings_client.__version__}-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(
            f"tidings_client-{tidings_client.__version__}.dist-info/METADATA").decode()
    assert "tidings_client/protocol/codec.py" in names and "tidings_client/py.typed" in names
    assert not [n for n in names if n.startswith("tidings/")]
    requires = sorted(line.split(":", 1)[1].split(">")[0].strip()
                      for line in meta.splitlines() if line.startswith("Requires-Dist:"))
    assert requires == ["aiohttp", "msgspec"]

    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(python, "-m", "pip", "install", "--quiet", wheel)
    assert installed.returncode == 0, installed.stderr
    for module in SERVER_ONLY:
        probe = _run(python, "-c", f"import {module}", timeout=60)
        assert probe.returncode == 1 and "ModuleNotFoundError" in probe.stderr, module
    where = _run(python, "-c", "import tidings_client; print(tidings_client.__file__)", timeout=60)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr

    example = _run(python, CLIENT / "examples" / "quickstart.py", node.http_url, timeout=120)
    assert example.returncode == 0, example.stdout + example.stderr + node.log_tail()
    assert "bob got #" in example.stdout and "hello from a script" in example.stdout
    assert example.stdout.rstrip().endswith("quickstart: ok")
