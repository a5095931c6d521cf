"""``tidings config show`` and ``tidings config check``: effective values, their
sources, masked secrets, and a non-zero exit naming each problem."""

from __future__ import annotations

import json

import pytest

from tidings.cli import main
from tidings.config import Settings


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert isinstance(exc.value.code, int)
    return exc.value.code, out, err


def test_show_names_each_value_and_its_source(tmp_path, monkeypatch, capsys):
    config = tmp_path / "t.toml"
    config.write_text('port = 9000\nlog_level = "debug"\njwt_secret = "hush"\n')
    monkeypatch.setenv("TIDINGS_LOG_LEVEL", "warning")
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "postgresql://tidings:s3cret@db:5432/tidings")
    code, out, err = run(["config", "show", "--config", str(config), "--idle-timeout", "90"],
                         capsys)
    assert code == 0 and err == ""
    lines = {line.split(" = ")[0].strip(): line for line in out.splitlines()}
    assert set(lines) == set(Settings.__struct_fields__)
    assert lines["port"].endswith(f"= 9000  # file {config}")
    assert lines["log_level"].endswith('= "warning"  # env TIDINGS_LOG_LEVEL')
    assert lines["idle_timeout"].endswith("= 90.0  # flag --idle-timeout")
    assert lines["host"].endswith('= "127.0.0.1"  # default')
    assert lines["jwt_secret"].endswith('= "***"  # file ' + str(config))
    assert lines["database_url"].endswith('"postgresql://tidings:***@db:5432/tidings"  # env '
                                          "TIDINGS_DATABASE_URL")
    assert "hush" not in out and "s3cret" not in out


def test_show_as_json(capsys):
    code, out, _ = run(["config", "show", "--json", "--port", "1234"], capsys)
    shown = json.loads(out)
    assert code == 0
    assert shown["port"] == {"value": 1234, "source": "flag --port"}
    assert shown["namespaces"]["source"] == "default"
    assert shown["namespaces"]["value"]["room"]["presence"] is True


def test_check_accepts_a_good_configuration_and_prints_it(tmp_path, capsys):
    env_file = tmp_path / "tidings.env"
    env_file.write_text('# deployment\nTIDINGS_PORT=8080\nexport TIDINGS_HOST="0.0.0.0"\n\n'
                        "TIDINGS_ADMIN_USERS='alice, bob'\n")
    code, out, err = run(["config", "check", "--env-file", str(env_file)], capsys)
    assert code == 0
    assert err == "configuration OK; effective settings:\n"
    assert "= 8080  # env TIDINGS_PORT" in out
    assert '= "0.0.0.0"  # env TIDINGS_HOST' in out
    assert '= ["alice", "bob"]  # env TIDINGS_ADMIN_USERS' in out


def test_check_names_every_problem_and_exits_1(tmp_path, capsys):
    config = tmp_path / "t.toml"
    config.write_text('port = 70000\nlog_level = "LOUD"\nbus_url = "amqp://x"\n')
    code, out, err = run(["config", "check", "--config", str(config)], capsys)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"tidings: invalid setting port = 70000 (from file {config}): must be a port number "
        "from 0 to 65535 (0: any free)",
        f"tidings: invalid setting bus_url = 'amqp://x' (from file {config}): has scheme "
        "amqp://; expected memory://, redis://, rediss://, postgresql://, postgres://",
        f"tidings: invalid setting log_level = 'LOUD' (from file {config}): must be one of "
        "debug, info, warning, error",
        "tidings: configuration has 3 problems",
    ]


def test_show_with_a_bad_setting_is_one_line(capsys):
    code, out, err = run(["config", "show", "--port", "-3"], capsys)
    assert code == 1 and out == ""
    assert err == ("tidings: invalid setting port = -3 (from flag --port): must be a port "
                   "number from 0 to 65535 (0: any free)\n")


@pytest.mark.parametrize("text,expected", [
    ("TIDINGS_PORT\n", "line 1: expected NAME=value"),
    ("# ok\n=5\n", "line 2: expected NAME=value"),
])
def test_check_refuses_a_malformed_env_file(tmp_path, capsys, text, expected):
    env_file = tmp_path / "bad.env"
    env_file.write_text(text)
    code, _, err = run(["config", "check", "--env-file", str(env_file)], capsys)
    assert code == 1 and err.strip().endswith(expected) and len(err.splitlines()) == 1


def test_check_with_a_missing_env_file(tmp_path, capsys):
    code, _, err = run(["config", "check", "--env-file", str(tmp_path / "none.env")], capsys)
    assert code == 1
    assert err == f"tidings: cannot read env file '{tmp_path / 'none.env'}': no such file or " \
                  "directory\n"
