"""Settings: defaults < TOML file < ``TIDINGS_*`` env vars < flags (``load_settings``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.config import HELP, Settings, load_settings


def toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tidings.toml"
    path.write_text(text)
    return str(path)


def test_without_any_source_the_defaults_apply():
    assert load_settings(environ={}) == Settings()


def test_every_setting_has_help():
    assert set(HELP) == set(Settings.__struct_fields__)


def test_file_then_env_then_overrides_each_win(tmp_path):
    path = toml(tmp_path, 'port = 1000\nhost = "10.0.0.1"\nlog_level = "debug"\n'
                          'rate_limit = 5.0\n')
    environ = {"TIDINGS_PORT": "2000", "TIDINGS_HOST": "10.0.0.2"}
    settings = load_settings(path, environ=environ, overrides={"port": "3000", "host": None})
    assert settings.port == 3000  # flag over env over file
    assert settings.host == "10.0.0.2"  # env over file; a None flag is "not given"
    assert settings.log_level == "debug" and settings.rate_limit == 5.0  # file over default
    assert settings.idle_timeout == Settings().idle_timeout


def test_the_config_file_may_come_from_tidings_config(tmp_path):
    path = toml(tmp_path, "max_connections_per_user = 7\n")
    assert load_settings(environ={"TIDINGS_CONFIG": path}).max_connections_per_user == 7
    # An explicit file wins over $TIDINGS_CONFIG.
    other = tmp_path / "other.toml"
    other.write_text("max_connections_per_user = 9\n")
    settings = load_settings(str(other), environ={"TIDINGS_CONFIG": path})
    assert settings.max_connections_per_user == 9


def test_toml_keys_may_be_spelled_with_dashes(tmp_path):
    path = toml(tmp_path, "max-body-bytes = 4096\nallowed-origins = [\"https://a.example\"]\n")
    settings = load_settings(path, environ={})
    assert settings.max_body_bytes == 4096
    assert settings.allowed_origins == ["https://a.example"]


def test_env_values_are_converted_to_the_setting_type():
    settings = load_settings(environ={"TIDINGS_PORT": "9000", "TIDINGS_RATE_LIMIT": "2.5",
                                      "TIDINGS_TOKEN_TTL": "60", "OTHER_PORT": "1"})
    assert settings.port == 9000 and settings.rate_limit == 2.5 and settings.token_ttl == 60.0


def test_allowed_origins_is_a_comma_list_in_env_vars_and_flags():
    env = {"TIDINGS_ALLOWED_ORIGINS": " https://a.example, https://b.example ,,"}
    assert load_settings(environ=env).allowed_origins == ["https://a.example",
                                                          "https://b.example"]
    flagged = load_settings(environ=env, overrides={"allowed_origins": "*"})
    assert flagged.allowed_origins == ["*"]
    assert load_settings(environ={"TIDINGS_ALLOWED_ORIGINS": ""}).allowed_origins == []


@pytest.mark.parametrize("line,setting,words", [
    ('port = "eighty"', "port", "expected a whole number, got text"),
    ("port = [1]", "port", "expected a whole number, got a list"),
    ('token_ttl = "soon"', "token_ttl", "expected a number, got text"),
    ("allowed_origins = 5", "allowed_origins", "expected a list, got a whole number"),
    ("log_level = 3", "log_level", "expected text, got a whole number"),
    ("rate_burst = true", "rate_burst", "expected a whole number, got true or false"),
])
def test_a_wrong_type_in_the_file_is_a_value_error_naming_the_setting(tmp_path, line,
                                                                      setting, words):
    with pytest.raises(ValueError) as exc:
        load_settings(toml(tmp_path, line + "\n"), environ={})
    assert str(exc.value).startswith(f"invalid setting {setting} = ")
    assert "(from file " in str(exc.value) and str(exc.value).endswith(words)
    assert "`" not in str(exc.value) and "$." not in str(exc.value)  # no msgspec jargon


def test_a_wrong_type_in_an_env_var_is_a_value_error_naming_the_setting():
    with pytest.raises(ValueError, match=r"max_frame_bytes = '1MB' \(from env "
                                         r"TIDINGS_MAX_FRAME_BYTES\): expected a whole number"):
        load_settings(environ={"TIDINGS_MAX_FRAME_BYTES": "1MB"})


def test_an_unknown_setting_in_the_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="prot"):
        load_settings(toml(tmp_path, "prot = 80\n"), environ={})


def test_a_file_that_is_not_toml_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        load_settings(toml(tmp_path, "port = = 1\n"), environ={})
