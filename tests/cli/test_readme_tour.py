"""The README's 60-second tour, run as written against a real ``tidings serve``: each
shell and Python block of the tour, with the outputs the README shows compared to what
the node answers (ids, offsets and texts exactly; tokens and times by shape).
So the tour cannot rot. Only the address changes (a free port instead of 8443)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
README = (ROOT / "README.md").read_text()
TOUR = README.split("## A 60-second tour", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", TOUR, re.S | re.M)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[str]:
    """A fresh node on a free port; yields its host:port."""
    log_path = tmp_path / "node.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "tidings"), "serve", "--port", "0", "--database-url",
             f"sqlite:///{tmp_path}/tour.db"], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def listening() -> str | None:
            assert proc.poll() is None, log_path.read_text()
            found = re.search(r"Tidings listening on http://(\S+)", log_path.read_text())
            return found.group(1) if found else None

        yield wait_for(listening, 60, "the node to listen")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log_path.read_text()


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCKS if lang == language]


def localize(text: str, address: str) -> str:
    return (text.replace("127.0.0.1:8443", address)
            .replace(".venv/bin/tidings", str(BIN / "tidings")))


def commands_and_answers(block: str) -> list[tuple[str, str | None]]:
    """Each command of a shell block (continuation lines joined) with the ``# answer``
    comment that follows it, if any."""
    pairs: list[tuple[str, str | None]] = []
    command = ""
    for line in block.splitlines():
        if line.startswith("# ") and pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], line[2:])
        elif line.strip():
            command += line + "\n"
            if not line.endswith("\\") and _balanced(command):
                pairs.append((command, None))
                command = ""
    return pairs


def _balanced(command: str) -> bool:
    return command.count("(") == command.count(")") and command.count("{") == \
        command.count("}")


def same_shape(actual: Any, expected_text: str) -> None:
    """``actual`` (decoded JSON) has the keys of the README's answer, and its values
    except those the README abbreviates (``…``) or that are times."""
    expected = json.loads(expected_text.replace("…", ""))
    assert set(actual) == set(expected), (actual, expected)
    for key, value in expected.items():
        if key in ("expires_at", "created_at"):
            assert isinstance(actual[key], int) and actual[key] > 1_700_000_000_000
        elif key == "token":  # "tdg_" and 43 more characters, as the README says
            assert value.startswith("tdg_")
            assert re.fullmatch(r"tdg_[A-Za-z0-9_-]{43}", actual[key]), actual[key]
        else:
            assert actual[key] == value, key


def bash(script: str, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                            text=True, timeout=120, env=env, cwd=cwd, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_tour_blocks_are_where_the_test_expects_them():
    assert [lang for lang, _ in BLOCKS][:7] == ["sh", "sh", "python", "", "python", "sh", ""]


def test_the_readme_tour_runs_as_written(node, tmp_path):
    # TIDINGS_URL: `tidings publish` defaults to the README's 127.0.0.1:8443.
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path),
           "TIDINGS_URL": f"http://{node}"}
    register_block, login_block = blocks("sh")[:2]

    # 1. two users, two tokens
    for command, answer in commands_and_answers(register_block):
        output = bash(localize(command, node), env, tmp_path)
        assert answer is not None, command
        same_shape(json.loads(output), answer)
    exported = bash(localize(login_block, node) + 'echo "$ALICE_TOKEN $BOB_TOKEN"', env,
                    tmp_path).split()
    assert len(exported) == 2 and all(t.startswith("tdg_") for t in exported)
    env.update(ALICE_TOKEN=exported[0], BOB_TOKEN=exported[1])

    # 2. the Python client
    tour_py, desk_py = blocks("python")[:2]
    (tmp_path / "tour.py").write_text(localize(tour_py, node))
    result = subprocess.run([sys.executable, "tour.py"], capture_output=True, text=True,
                            timeout=120, env=env, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    shown = blocks("")[0].splitlines()
    printed = result.stdout.splitlines()
    assert printed[:2] == shown[:2]  # stored as message 1; bob got #1 from 1: hello bob
    assert printed[-1] == shown[-1]  # the read receipt ends it
    # Presence in whatever order, and maybe a delivered receipt first (the README says so).
    allowed = {*shown[2:], shown[-1].replace("'read'", "'delivered'")}
    assert "`status='delivered'` receipt may" in README
    assert set(printed[2:]) <= allowed, printed

    # 3. channels: desk.py subscribes, curl and the CLI publish
    (tmp_path / "desk.py").write_text(localize(desk_py, node))
    out_path = tmp_path / "desk.out"
    with out_path.open("w") as out:
        desk = subprocess.Popen([sys.executable, "-u", "desk.py"], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        def subscribed() -> bool:
            assert desk.poll() is None, out_path.read_text()
            request = urllib.request.Request(
                f"http://{node}/api/v1/channels/room:ops/presence",
                headers={"Authorization": f"Bearer {env['ALICE_TOKEN']}"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return bool(json.load(response)["subscribers"])

        wait_for(subscribed, 60, "desk.py to subscribe to room:ops")
        for command, answer in commands_and_answers(blocks("sh")[2]):
            output = bash(localize(command, node), env, tmp_path)
            assert answer is not None, command
            if answer.startswith("{"):
                same_shape(json.loads(output), answer)
            else:
                assert output.strip() == answer
        expected = blocks("")[1].splitlines()
        wait_for(lambda: len(out_path.read_text().splitlines()) >= len(expected), 60,
                 "desk.py to print the publications")
        assert out_path.read_text().splitlines() == expected
    finally:
        desk.kill()
        desk.wait()

    # 4. the browser console (the JS blocks, under Node's WebSocket)
    console_js, one_liners = blocks("js")[:2]
    script = localize(console_js, node).replace('"tdg_…"', "process.env.BOB_TOKEN")
    script = script.replace('(e) => console.log("<-", e.data)',
                            '(e) => { console.log("<-", e.data); got++; }')
    assert "got++" in script
    driver = ["let got = 0;", script,
              "const until = (n) => new Promise((ok) => { const t = setInterval(() => "
              "{ if (got >= n) { clearInterval(t); ok(); } }, 20); });",
              "(async () => { await until(3);"]
    expected_replies = 3
    for line in one_liners.splitlines():  # one at a time, as a person types them
        if line.strip():
            driver.append(line.split("//")[0].strip() + ";")
            expected_replies += 0 if "no reply" in line else 1
            driver.append(f"await until({expected_replies});")
    driver.append("process.exit(0); })();")
    (tmp_path / "console.mjs").write_text("\n".join(driver))
    try:
        result = subprocess.run(["node", "--experimental-websocket", "console.mjs"],
                                capture_output=True, text=True, timeout=60, env=env,
                                cwd=tmp_path, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"console.mjs: {exc.stdout!r} {exc.stderr!r}") from None
    assert result.returncode == 0, result.stderr
    frames = [json.loads(line[3:]) for line in result.stdout.splitlines()
              if line.startswith("<- ")]
    assert [f["type"] for f in frames] == [101, 103, 104, 107, 103, 104, 105]
    shown = [json.loads(re.sub(r"\{\"message_id\":1,…\}", "{}", line[3:]))
             for js_out in blocks("")[2:4] for line in js_out.splitlines()
             if line.startswith("<- ")]
    assert [f["type"] for f in shown] == [f["type"] for f in frames]
    # success, user 2, device console, and when the login token expires (its own time)
    got, want = dict(frames[0]["payload"]), dict(shown[0]["payload"])
    assert isinstance(got.pop("expires_at"), int) and isinstance(want.pop("expires_at"), int)
    assert got == want
    assert frames[1]["payload"]["messages"][0]["content"] == "hello bob"
    assert frames[2]["payload"] == shown[2]["payload"]  # bob online
    assert frames[3]["payload"]["message_id"] == shown[3]["payload"]["message_id"]
    assert frames[5]["payload"] == shown[5]["payload"]  # bob away
