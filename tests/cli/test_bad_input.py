"""Every bad input of issue 18 (and the others found) ends the command with one line
saying what is wrong and a non-zero exit status — never a traceback.

Most cases run ``main()`` in-process (fast); a sample runs the real ``tidings``
executable and reads its stderr, so what a user sees is checked too.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.services import free_port
from tidings.cli import main

BIN = Path(sys.executable).parent / "tidings"
PASSWORD = "correct horse"


def closed_port() -> int:
    """A port nothing listens on (connections are refused)."""
    return free_port()


def one_line_failure(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main(argv)``; assert it exits non-zero with a single ``tidings: …`` line
    and prints nothing else; return that line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    if isinstance(code, int):  # argparse: the message is on stderr, the status is 2
        assert code == 2
        message = err.strip()
    else:
        assert isinstance(code, str)
        assert err == "", err  # no log lines, no drain before the error
        message = code
    assert out == ""
    assert message.startswith("tidings: "), message
    assert "\n" not in message and "Traceback" not in message, message
    assert "`" not in message and "\\Z" not in message, message  # no msgspec/regex jargon
    return message


def run_tidings(*argv: str, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *argv], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd, check=False)


DB_COMMANDS = [
    ["migrate"],
    ["user", "add", "bob", "--password", PASSWORD],
    ["token", "create", "--user", "bob"],
    ["token", "list", "--user", "bob"],
    ["token", "revoke", "1"],
    ["desks", "demo"],
    ["serve", "--port", "0"],
]


@pytest.mark.parametrize("command", DB_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_an_unreachable_postgresql_is_one_line(command, capsys):
    port = closed_port()
    url = f"postgresql://tidings:s3cret@127.0.0.1:{port}/tidings"
    message = one_line_failure([*command, "--database-url", url], capsys)
    assert message == (f"tidings: cannot use the database postgresql://tidings:***@127.0.0.1:"
                       f"{port}/tidings: connection refused (is it running, on this host "
                       "and port?)")


def test_an_unreachable_redis_store_is_one_line(capsys):
    port = closed_port()
    message = one_line_failure(["migrate", "--database-url", f"redis://127.0.0.1:{port}/0"],
                               capsys)
    assert message.startswith(f"tidings: cannot use the database redis://127.0.0.1:{port}/0: ")
    assert "refused" in message


def test_an_unknown_database_host_is_one_line(capsys):
    message = one_line_failure(["migrate", "--database-url",
                                "postgresql://u@no-such-host.invalid/db"], capsys)
    assert message.endswith(": unknown host name")


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["user", "add", "bob"]])
def test_a_sqlite_file_in_a_missing_folder_is_refused_before_anything_starts(command, capsys,
                                                                             tmp_path):
    url = f"sqlite:///{tmp_path}/missing-dir/x.db"
    message = one_line_failure([*command, "--database-url", url], capsys)
    assert message == (f"tidings: invalid setting database_url = {url!r} (from flag "
                       f"--database-url): names a file in '{tmp_path}/missing-dir', a folder "
                       "that does not exist")
    assert not (tmp_path / "missing-dir").exists()


@pytest.mark.parametrize("argv,expected", [
    (["--port", "99999"], "port = 99999 (from flag --port): must be a port number from 0 to "
                          "65535"),
    (["--port", "-1"], "port = -1 (from flag --port): must be a port number"),
    (["--port", "http"], "port = 'http' (from flag --port): expected a whole number, got text"),
    (["--log-level", "LOUD"], "log_level = 'LOUD' (from flag --log-level): must be one of "
                              "debug, info, warning, error"),
    (["--idle-timeout", "-1"], "idle_timeout = -1.0 (from flag --idle-timeout): must be more "
                               "than 0"),
    (["--shutdown-timeout", "nan"], "shutdown_timeout = nan (from flag --shutdown-timeout): "
                                    "must be a finite number"),
    (["--workers", "0"], "workers = 0 (from flag --workers): must be from 1 to 256"),
    (["--max-frame-bytes", "1MB"], "max_frame_bytes = '1MB' (from flag --max-frame-bytes): "
                                   "expected a whole number, got text"),
    (["--bus-url", "http://x"], "bus_url = 'http://x' (from flag --bus-url): has scheme "
                                "http://; expected memory://"),
    (["--bus-url", "localhost:6379"], "bus_url = 'localhost:6379' (from flag --bus-url): is "
                                      "not a URL"),
    (["--cache-url", "redis://h:70000/0"], "cache_url = 'redis://h:70000/0' (from flag "
                                           "--cache-url): is not a valid URL"),
    (["--database-url", ""], "database_url = '' (from flag --database-url): must not be "
                             "empty"),
    (["--tls-cert-file", "/no/such.pem"], "tls_cert_file = '/no/such.pem' (from flag "
                                          "--tls-cert-file): names a file that does not "
                                          "exist"),
    (["--namespaces", "{bad"], "namespaces is not JSON"),
    (["--namespaces", '{"room": {"subscribe": 5}}'], "expected text, got a whole number"),
])
def test_serve_validates_every_setting_before_anything_starts(argv, expected, capsys,
                                                              tmp_path):
    message = one_line_failure(["serve", "--database-url",
                                f"sqlite:///{tmp_path}/x.db", *argv], capsys)
    assert expected in message
    assert not (tmp_path / "x.db").exists()  # nothing migrated


def test_a_bad_env_var_names_its_source(monkeypatch, capsys):
    monkeypatch.setenv("TIDINGS_PORT", "99999")
    message = one_line_failure(["migrate"], capsys)
    assert "port = 99999 (from env TIDINGS_PORT)" in message


def test_every_problem_is_named_on_the_one_line(capsys):
    message = one_line_failure(["serve", "--port", "99999", "--log-level", "LOUD"], capsys)
    assert "port = 99999" in message and "log_level = 'LOUD'" in message


@pytest.mark.parametrize("ttl", ["-5", "0", "nan", "inf"])
def test_token_create_refuses_a_ttl_that_is_not_a_positive_duration(ttl, capsys, sqlite_url):
    message = one_line_failure(["token", "create", "--user", "bob", "--ttl", ttl,
                                "--database-url", sqlite_url], capsys)
    assert message.startswith("tidings: --ttl must be a number of seconds above 0")


@pytest.mark.parametrize("argv,expected", [
    (["token", "create", "--user", "b", "--ttl", "soon"], "argument --ttl: invalid float value"),
    (["desks", "demo", "--floors", "x"], "argument --floors: invalid int value"),
    (["serve", "--prot", "1"], "unrecognized arguments: --prot"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_usage_errors_are_one_line_with_status_2(argv, expected, capsys):
    message = one_line_failure(argv, capsys)
    assert expected in message and "--help" in message


def test_the_config_file_problems_are_one_line(tmp_path, capsys):
    message = one_line_failure(["migrate", "--config", str(tmp_path / "none.toml")], capsys)
    assert message == (f"tidings: cannot read config file '{tmp_path / 'none.toml'}': "
                       "no such file or directory")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1\n")
    message = one_line_failure(["migrate", "--config", str(bad)], capsys)
    assert "is not valid TOML" in message
    typo = tmp_path / "typo.toml"
    typo.write_text("prot = 80\n")
    message = one_line_failure(["migrate", "--config", str(typo)], capsys)
    assert message.endswith("unknown setting 'prot' in config file "
                            f"'{typo}' (did you mean port?)")


def test_user_names_and_passwords_are_refused_in_words(capsys, sqlite_url):
    message = one_line_failure(["user", "add", "a b", "--password", PASSWORD,
                                "--database-url", sqlite_url], capsys)
    assert message == ("tidings: invalid user name 'a b': use 1 to 64 letters, digits or "
                       ". _ @ - (expected text made of letters, digits and . _ @ -)")
    message = one_line_failure(["user", "add", "bob", "--password", "x" * 2000,
                                "--database-url", sqlite_url], capsys)
    assert message == ("tidings: invalid password: expected text of at most 1024 "
                       "characters")


# tidings publish: never a repr


def _serve_once(answer: bytes) -> tuple[int, threading.Thread]:
    """A one-request HTTP server on 127.0.0.1 answering ``answer`` (b"" = close)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(60)

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                if answer:
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.parametrize("answer,expected", [
    (b"", "the server closed the connection without answering"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
     "the answer is not JSON (is it a Tidings node?)"),
    (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
     b"Connection: close\r\n\r\n[]", "answered HTTP 404 without a Tidings answer"),
])
def test_publish_explains_a_bad_answer_in_words(answer, expected, capsys):
    port, thread = _serve_once(answer)
    message = one_line_failure(["publish", "room:x", "hi", "--token", "t", "--url",
                                f"http://127.0.0.1:{port}"], capsys)
    thread.join(60)
    assert expected in message
    assert "Error(" not in message and "<" not in message  # no exception repr


def test_publish_refuses_a_url_that_is_not_http(capsys):
    message = one_line_failure(["publish", "room:x", "hi", "--token", "t", "--url",
                                "127.0.0.1:8443"], capsys)
    assert message == ("tidings: --url must start with http:// or https://, got "
                       "'127.0.0.1:8443'")


# the real executable: what the user sees on stderr


@pytest.mark.parametrize("argv", [
    ["migrate", "--database-url", "postgresql://u@127.0.0.1:{port}/db"],
    ["user", "add", "bob", "--password", PASSWORD, "--database-url",
     "postgresql://u@127.0.0.1:{port}/db"],
    ["token", "create", "--user", "bob", "--database-url", "postgresql://u@127.0.0.1:{port}/db"],
    ["serve", "--database-url", "sqlite:///missing-dir/x.db"],
    ["serve", "--port", "99999"],
    ["serve", "--log-level", "LOUD"],
    ["token", "create", "--user", "bob", "--ttl", "-5"],
    ["publish", "room:x", "hi", "--token", "t", "--url", "http://127.0.0.1:{port}"],
], ids=lambda a: " ".join(a[:3]))
def test_the_executable_prints_one_line_and_exits_1(argv, tmp_path):
    port = closed_port()
    result = run_tidings(*(a.format(port=port) for a in argv), cwd=tmp_path)
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tidings: "), result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_port_in_use_fails_before_migrating_or_draining(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_tidings("serve", "--port", str(port), "--database-url",
                             f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 1
    assert result.stderr == (f"tidings: cannot listen on 127.0.0.1:{port}: the address is "
                             "already in use (another process listens on this port)\n")
    assert not (tmp_path / "x.db").exists()
