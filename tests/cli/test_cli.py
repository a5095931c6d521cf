"""The ``tidings`` command: in-process through ``main()``, and by subprocess for
``--help`` and a real ``serve``."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings import __version__, cli_serve
from tidings.auth import hash_token, verify_password
from tidings.cli import main
from tidings.config import Settings
from tidings.store import open_store
from tidings.store.base import now_ms
from tidings.store.migrate import list_migrations

PASSWORD = "correct horse"
BIN = Path(sys.executable).parent


def run(argv: list[str]) -> None:
    """``main(argv)`` expecting success."""
    main(argv)


def fails(argv: list[str]) -> str:
    """``main(argv)`` expecting a clean exit with a message; return the message."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert isinstance(exc.value.code, str), exc.value.code
    assert exc.value.code.startswith("tidings: ")
    return exc.value.code


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}


async def _lookup_user(url: str, name: str):
    store = open_store(url)
    try:
        return await store.get_user_by_name(name)
    finally:
        await store.close()


def lookup_user(url: str, name: str):
    return asyncio.run(_lookup_user(url, name))


# help and version


def test_serve_help_lists_every_setting_with_its_env_var():
    result = subprocess.run([sys.executable, "-m", "tidings", "serve", "--help"],
                            capture_output=True, text=True, timeout=30, env=clean_env(),
                            check=False)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for name in Settings.__struct_fields__:
        assert "--" + name.replace("_", "-") in text, name
        assert f"TIDINGS_{name.upper()}" in text, name
    assert "--config" in text and "TOML" in text


def test_console_script_help_lists_the_commands():
    result = subprocess.run([str(BIN / "tidings"), "--help"], capture_output=True, text=True,
                            timeout=30, env=clean_env(), check=False)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "user", "token"):
        assert command in result.stdout
    assert "TIDINGS_" in result.stdout


def test_python_m_tidings_is_the_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tidings", "--version"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("tidings", run_name="__main__")
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"tidings {__version__}"


def test_a_missing_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == ("tidings: the following arguments are required: "
                                               "command (see: tidings --help)")


# migrate


def test_migrate_applies_the_schema_then_reports_it_up_to_date(sqlite_url, capsys):
    run(["migrate", "--database-url", sqlite_url])
    every = ", ".join(m.name for m in list_migrations("sqlite"))
    assert capsys.readouterr().out == f"applied: {every}\n"
    run(["migrate", "--database-url", sqlite_url])
    assert capsys.readouterr().out == "schema is up to date\n"


@pytest.mark.parametrize("command", [["migrate"], ["user", "add", "x", "--password", PASSWORD],
                                     ["token", "create", "--user", "x"], ["serve"]])
def test_an_unsupported_database_url_exits_with_a_message(command):
    message = fails([*command, "--database-url", "mysql://localhost/x"])
    assert "database_url = 'mysql://localhost/x'" in message and "has scheme mysql://" in message


# user add


def test_user_add_creates_a_user_who_can_log_in(sqlite_url, capsys):
    run(["user", "add", "alice", "--password", PASSWORD, "--database-url", sqlite_url])
    assert capsys.readouterr().out == "user alice created with id 1\n"
    user = lookup_user(sqlite_url, "alice")
    assert user is not None and user.id == 1
    assert asyncio.run(verify_password(user.password_hash, PASSWORD))
    assert not asyncio.run(verify_password(user.password_hash, "wrong password"))


def test_user_add_twice_exits_with_a_clear_message(sqlite_url, capsys):
    run(["user", "add", "alice", "--password", PASSWORD, "--database-url", sqlite_url])
    message = fails(["user", "add", "alice", "--password", "other password",
                     "--database-url", sqlite_url])
    assert message == "tidings: user 'alice' already exists"


def test_user_add_refuses_a_short_password_and_creates_nothing(sqlite_url, tmp_path):
    message = fails(["user", "add", "alice", "--password", "short",
                     "--database-url", sqlite_url])
    assert "at least 8 characters" in message
    assert not (tmp_path / "cli.db").exists()


def test_user_add_refuses_an_overlong_password(sqlite_url, tmp_path):
    message = fails(["user", "add", "alice", "--password", "p" * 1025,
                     "--database-url", sqlite_url])
    assert "invalid password" in message
    assert not (tmp_path / "cli.db").exists()


@pytest.mark.parametrize("name", ["has space", "alice\n", "x" * 65, "", "o'brien"])
def test_user_add_refuses_a_name_the_http_api_would_refuse(sqlite_url, tmp_path, name,
                                                           monkeypatch):
    def no_prompt(*args: object) -> str:
        raise AssertionError("asked for a password for an invalid name")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    message = fails(["user", "add", name, "--database-url", sqlite_url])
    assert "invalid user name" in message
    assert not (tmp_path / "cli.db").exists()


def test_user_add_takes_the_password_from_the_environment(sqlite_url, monkeypatch, capsys):
    monkeypatch.setenv("TIDINGS_PASSWORD", "from the environment")
    run(["user", "add", "bob", "--database-url", sqlite_url])
    user = lookup_user(sqlite_url, "bob")
    assert asyncio.run(verify_password(user.password_hash, "from the environment"))


def test_user_add_prompts_for_the_password_when_none_is_given(sqlite_url, monkeypatch, capsys):
    prompts: list[object] = []

    def prompt(*args: object) -> str:
        prompts.append(args)
        return "typed at the prompt"

    monkeypatch.setattr("getpass.getpass", prompt)
    run(["user", "add", "carol", "--database-url", sqlite_url])
    assert len(prompts) == 1
    user = lookup_user(sqlite_url, "carol")
    assert asyncio.run(verify_password(user.password_hash, "typed at the prompt"))


# token create


async def test_token_create_prints_a_token_that_authenticates_over_ws(store_url, capsys):
    await asyncio.to_thread(main, ["user", "add", "dora", "--password", PASSWORD,
                                   "--database-url", store_url])
    capsys.readouterr()
    await asyncio.to_thread(main, ["token", "create", "--user", "dora", "--device-id", "laptop",
                                   "--database-url", store_url])
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n" and token.startswith("tdg_")  # stdout holds the token only
    assert "user dora (id 1)" in err and "shown once" in err

    node = await RunningServer(store_url).start()
    try:
        async with aiohttp.ClientSession() as http:
            wire = await Wire.open(http, node.ws_url)
            rsp = await wire.auth(token)
            assert rsp["user_id"] == 1 and rsp["device_id"] == "laptop"
            await wire.close()
    finally:
        await node.stop()


def test_token_create_ttl_sets_the_expiry(sqlite_url, capsys):
    run(["user", "add", "erin", "--password", PASSWORD, "--database-url", sqlite_url])
    before = now_ms()
    run(["token", "create", "--user", "erin", "--ttl", "60", "--name", "ci",
         "--database-url", sqlite_url])
    token = capsys.readouterr().out.splitlines()[-1]

    async def stored():
        store = open_store(sqlite_url)
        try:
            return await store.get_token(hash_token(token))
        finally:
            await store.close()

    row = asyncio.run(stored())
    assert row is not None and row.name == "ci" and row.device_id is None
    assert before + 60_000 <= row.expires_at <= now_ms() + 60_000


def test_token_create_for_an_unknown_user_exits_with_a_clear_message(sqlite_url, capsys):
    message = fails(["token", "create", "--user", "ghost", "--database-url", sqlite_url])
    assert message == "tidings: no user 'ghost'"
    assert capsys.readouterr().out == ""


# settings through the command line


def test_flag_beats_env_var_beats_config_file_on_the_command_line(tmp_path, monkeypatch,
                                                                   capsys):
    config = tmp_path / "tidings.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "from-file.db"}"\n')
    monkeypatch.setenv("TIDINGS_CONFIG", str(config))
    run(["migrate"])
    assert (tmp_path / "from-file.db").exists()

    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite:///{tmp_path / 'from-env.db'}")
    run(["migrate"])
    assert (tmp_path / "from-env.db").exists()

    run(["migrate", "--database-url", f"sqlite:///{tmp_path / 'from-flag.db'}"])
    assert (tmp_path / "from-flag.db").exists()
    assert capsys.readouterr().out.count("applied: 0001_core, ") == 3


def test_a_missing_config_file_exits_with_a_message(tmp_path):
    message = fails(["migrate", "--config", str(tmp_path / "missing.toml")])
    assert "missing.toml" in message


def test_a_config_file_with_a_wrong_type_exits_naming_the_setting(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('port = "eighty"\n')
    message = fails(["serve", "--config", str(config)])
    assert "port" in message


def test_a_config_file_that_is_not_toml_exits_with_a_message(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("port = = 1\n")
    assert fails(["migrate", "--config", str(config)])


# serve


def test_serve_with_an_unknown_bus_url_exits_with_a_message(sqlite_url):
    message = fails(["serve", "--bus-url", "carrier-pigeon://", "--database-url", sqlite_url])
    assert "bus_url = 'carrier-pigeon://'" in message and "has scheme carrier-pigeon://" in message


def test_serve_with_a_missing_jwt_key_file_exits_with_a_message(sqlite_url, tmp_path):
    message = fails(["serve", "--jwt-public-key-file", str(tmp_path / "nope.pem"),
                     "--database-url", sqlite_url])
    assert "nope.pem" in message


def test_serve_on_a_port_in_use_exits_with_a_message(sqlite_url):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        message = fails(["serve", "--port", str(port), "--database-url", sqlite_url])
    assert message.startswith(f"tidings: cannot listen on 127.0.0.1:{port}:")
    assert "in use" in message
    assert not Path("cli.db").exists()  # refused before the migrations


async def test_serve_runs_until_sigterm_then_stops_cleanly(sqlite_url, caplog):
    caplog.set_level(logging.INFO, logger="tidings")
    loop = asyncio.get_running_loop()
    original = signal.getsignal(signal.SIGTERM)
    task = asyncio.create_task(cli_serve.serve(Settings(port=0, database_url=sqlite_url)))
    try:
        async with asyncio.timeout(10):
            # Signal only once _serve's handler is in place (the default would end
            # pytest) and the node listens.
            while (signal.getsignal(signal.SIGTERM) == original
                   or "Tidings listening on" not in caplog.text):
                assert not task.done(), task
                await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if not task.done():
            task.cancel()
    assert "shutting down" in caplog.text and "Tidings stopped" in caplog.text


# a real node


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_answers_health_and_stops_cleanly_on_sigterm(tmp_path):
    log_path = tmp_path / "serve.log"
    database = tmp_path / "served.db"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--port", "0",
             "--database-url", f"sqlite:///{database}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=clean_env(),
            cwd=tmp_path)
    try:
        def listening() -> str | None:
            assert proc.poll() is None, log_path.read_text()
            found = re.search(r"Tidings listening on (http://\S+)", log_path.read_text())
            return found.group(1) if found else None

        url = _wait_for(listening, 20, "the node to listen")

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait_for(healthy, 10, "/api/health to answer 200")
        assert database.exists()  # migrated on start

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log_path.read_text()
        text = log_path.read_text()
        assert "Tidings stopped" in text
        assert "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
