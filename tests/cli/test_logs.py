"""Logs: text or one JSON object a line, with request, connection and user ids, the
access log of HTTP requests and /ws closes, the start line, and secrets redacted."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tidings import __version__, logs

BIN = Path(sys.executable).parent / "tidings"


def start_node(tmp_path: Path, *flags: str, env: dict[str, str] | None = None):
    log_path = tmp_path / "node.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(BIN), "serve", "--port", "0", "--database-url",
                                 f"sqlite:///{tmp_path}/n.db", *flags],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        found = re.search(r"listening on (http://[\d.]+:\d+)", log_path.read_text())
        if found:
            return proc, found.group(1), log_path
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the node did not start")


def stop_node(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def session_of_one_user(url: str, *, request_ids: bool = True) -> str:
    """Register, log in over HTTP (request id given), then chat on /ws: auth, ping,
    close. Return the token."""
    async with aiohttp.ClientSession() as http:
        await http.post(url + "/api/v1/auth/register",
                        json={"username": "alice", "password": "correct horse"})
        async with http.post(url + "/api/v1/auth/login",
                             json={"username": "alice", "password": "correct horse"},
                             headers={"X-Request-Id": "req-login-1"}) as r:
            assert r.headers.get("X-Request-Id") == ("req-login-1" if request_ids else None)
            token = (await r.json())["token"]
        async with http.get(url + "/api/health", headers={"X-Request-Id": "bad id!"}) as r:
            if request_ids:  # an id that is not one is replaced
                assert re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-Id"])
        async with http.ws_connect(url.replace("http", "ws") + "/ws") as ws:
            await ws.send_str(json.dumps({"type": 1, "seq": 1,
                                          "payload": {"token": token, "device_id": "d1"}}))
            assert json.loads((await ws.receive()).data)["type"] == 101
            await ws.send_str(json.dumps({"type": 6, "seq": 2, "payload": {}}))
            while json.loads((await ws.receive(timeout=30)).data)["type"] != 105:
                pass
    return token


def drop_our_handler() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == "tidings":
            root.removeHandler(handler)


def wait_for_line(path: Path, pattern: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if re.search(pattern, path.read_text()):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in {path.read_text()}")


def test_json_logs_with_ids_an_access_log_and_no_secret(tmp_path):
    proc, url, log_path = start_node(tmp_path, "--log-format", "json", "--access-log",
                                     "--jwt-secret", "hush-hush-secret")
    try:
        token = asyncio.run(session_of_one_user(url))
        wait_for_line(log_path, r'"event": "ws_close"')
    finally:
        stop_node(proc)
    text = log_path.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is one object
    assert token not in text and "hush-hush-secret" not in text

    start = next(r for r in records if "listening on" in r["message"])
    assert {"time", "level", "logger", "message"} <= set(start)
    for part in (f"version {__version__}", f"pid {proc.pid}", f"store sqlite:///{tmp_path}",
                 "bus memory://", "config flag --port "):
        assert part in start["message"], start["message"]
    config = start["message"].split("config flag ")[1]
    assert set(config.rstrip(")").split()) == {"--port", "--database-url", "--log-format",
                                               "--access-log", "--jwt-secret"}

    http = {r["path"]: r for r in records if r.get("event") == "http"}
    login = http["/api/v1/auth/login"]
    assert login["request_id"] == "req-login-1" and login["status"] == 200
    assert login["method"] == "POST" and login["duration_ms"] >= 0 and login["bytes"] > 0
    assert http["/ws"]["status"] == 101

    authenticated = next(r for r in records if "authenticated user" in r["message"])
    assert authenticated["conn"].startswith("c") and authenticated["user_id"] == 1
    assert authenticated["device_id"] == "d1"
    assert authenticated["request_id"] == http["/ws"]["request_id"]  # its upgrade request

    (closed,) = [r for r in records if r.get("event") == "ws_close"]
    assert closed["code"] == 1000 and closed["user_id"] == 1 and closed["conn"] == \
        authenticated["conn"]
    assert closed["frames_in"] == 2 and closed["frames_out"] >= 3  # AuthRsp, sync, pong
    assert closed["duration_ms"] > 0


def test_text_logs_by_default_without_an_access_log(tmp_path):
    proc, url, log_path = start_node(tmp_path)
    try:
        asyncio.run(session_of_one_user(url, request_ids=False))
    finally:
        stop_node(proc)
    lines = log_path.read_text().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ", line)
               for line in lines), lines
    assert any("config defaults only" not in line and "config flag --port --database-url"
               in line for line in lines)
    assert not any("tidings.access" in line for line in lines)


def test_text_access_records_carry_their_fields(capsys):
    logs.configure("info", "text")
    try:
        logs.access_log.info("GET / 200", extra={"status": 200, "duration_ms": 1.5})
        logging.getLogger("tidings.x").info("token tdg_%s", "A" * 43)
    finally:
        drop_our_handler()
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("INFO tidings.access: GET / 200 status=200 duration_ms=1.5")
    assert err[1].endswith("INFO tidings.x: token tdg_[redacted]")


def test_json_records_redact_exceptions_and_extra_fields(capsys):
    logs.configure("debug", "json")
    try:
        try:
            raise ValueError("bad password=hunter2 for postgresql://u:pw@db/x")
        except ValueError:
            logging.getLogger("tidings.y").exception("failed", extra={
                "url": "postgresql://u:pw@db/x"})
    finally:
        drop_our_handler()
    record = json.loads(capsys.readouterr().err)
    assert record["level"] == "error" and record["message"] == "failed"
    assert "hunter2" not in record["exception"] and "ValueError" in record["exception"]
    assert record["url"] == "postgresql://u:[redacted]@db/x"


@pytest.mark.parametrize("fmt", ["xml", "JSONL"])
def test_an_unknown_log_format_is_refused(fmt, capsys):
    from tidings.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--log-format", fmt])
    assert f"log_format = '{fmt}'" in str(exc.value.code)
    assert "must be one of text, json" in str(exc.value.code)
