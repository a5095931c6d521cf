"""``tidings token list|revoke``, ``token create --scopes`` and ``tidings publish``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.support.server import RunningServer
from tidings.cli import main

BIN = Path(sys.executable).parent


def fails(argv: list[str]) -> str | int | None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def make_user(url: str, name: str = "alice") -> None:
    main(["user", "add", name, "--password", "correct horse", "--database-url", url])


def test_token_create_with_scopes_then_list_and_revoke(sqlite_url, capsys):
    make_user(sqlite_url)
    capsys.readouterr()
    main(["token", "create", "--user", "alice", "--name", "ci", "--scopes",
          "publish:room:*,subscribe:news", "--device-info", "platform=linux",
          "--database-url", sqlite_url])
    assert capsys.readouterr().out.startswith("tdg_")
    main(["token", "create", "--user", "alice", "--database-url", sqlite_url])
    capsys.readouterr()
    main(["token", "list", "--user", "alice", "--json", "--database-url", sqlite_url])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [2, 1]
    assert rows[1]["scopes"] == ["publish:room:*", "subscribe:news"]
    assert rows[1]["device_info"] == {"platform": "linux"} and rows[0]["scopes"] is None
    main(["token", "list", "--user", "alice", "--database-url", sqlite_url])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["ID", "STATUS", "NAME"]
    assert "publish:room:* subscribe:news" in table[2] and "(all)" in table[1]

    main(["token", "revoke", "1", "--database-url", sqlite_url])
    assert capsys.readouterr().out == "revoked: 1\n"
    assert fails(["token", "revoke", "1", "7", "--database-url", sqlite_url]) == 1
    assert "not revoked (unknown, already revoked or another user's): 1, 7" in (
        capsys.readouterr().err)
    main(["token", "list", "--user", "alice", "--json", "--database-url", sqlite_url])
    statuses = [json.loads(line)["status"] for line in capsys.readouterr().out.splitlines()]
    assert statuses == ["active", "revoked"]


def test_token_commands_refuse_bad_input(sqlite_url, capsys):
    make_user(sqlite_url)
    make_user(sqlite_url, "bob")
    assert "invalid scope 'read:x'" in str(fails(
        ["token", "create", "--user", "alice", "--scopes", "read:x",
         "--database-url", sqlite_url]))
    assert "KEY=VALUE" in str(fails(
        ["token", "create", "--user", "alice", "--device-info", "novalue",
         "--database-url", sqlite_url]))
    assert "no user 'carol'" in str(fails(["token", "list", "--user", "carol",
                                           "--database-url", sqlite_url]))
    assert "no user 'carol'" in str(fails(["token", "revoke", "1", "--user", "carol",
                                           "--database-url", sqlite_url]))
    main(["token", "create", "--user", "alice", "--database-url", sqlite_url])
    capsys.readouterr()
    assert fails(["token", "revoke", "1", "--user", "bob", "--database-url", sqlite_url]) == 1


async def publish(*args: str, env_extra: dict[str, str], stdin: bytes | None = None
                  ) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(env_extra)
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "tidings"), "publish", *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_publish_sends_json_or_text_and_reports_the_offset(tmp_path):
    server = await RunningServer(f"sqlite:///{tmp_path / 'pub.db'}").start()
    try:
        _, token = await server.quick_user()
        env = {"TIDINGS_URL": server.http_url, "TIDINGS_TOKEN": token}
        assert await publish("room:cli", '{"a": 1}', env_extra=env) == (
            0, "room:cli offset 1\n", "")
        assert (await publish("room:cli", "plain words", "--type", "note",
                              env_extra=env))[1] == "room:cli offset 2\n"
        assert (await publish("room:cli", "-", env_extra=env, stdin=b"[1, 2]"))[0] == 0
        code, out, _ = await publish("room:cli", "1", "--idempotency-key", "k",
                                     env_extra=env)
        code, out, _ = await publish("room:cli", "1", "--idempotency-key", "k",
                                     env_extra=env)
        assert out == "room:cli offset 4 (a repeat: published earlier)\n"
        page = await server.node.broker.history("room:cli", 0, 10)
        assert [(p.type, p.data) for p in page.publications] == [
            ("message", '{"a":1}'), ("note", '"plain words"'), ("message", "[1,2]"),
            ("message", "1")]
        code, _, err = await publish("broadcast:x", "1", env_extra=env)
        assert code == 1 and "403 PERMISSION_DENIED" in err
        code, _, err = await publish("room:cli", "1", env_extra={"TIDINGS_URL": server.http_url})
        assert code == 1 and "TIDINGS_TOKEN" in err
        code, _, err = await publish("room:cli", "1", "--url", "http://127.0.0.1:9",
                                     "--token", token, env_extra={})
        assert code == 1 and "cannot connect to http://127.0.0.1:9: connection refused" in err
    finally:
        await server.stop()
