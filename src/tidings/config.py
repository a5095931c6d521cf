"""Settings: defaults, then an optional TOML file, then ``TIDINGS_*`` env vars,
then command-line flags — each later source wins.

Every field below is one setting; its env var is ``TIDINGS_`` + the upper-case
name and its flag is ``--`` + the name with dashes. Lists are comma-separated
in env vars and flags.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """All Tidings settings with their defaults."""

    host: str = "127.0.0.1"
    port: int = 8443
    database_url: str = "sqlite:///tidings.db"
    bus_url: str = "memory://"
    jwt_secret: str = ""
    jwt_public_key_file: str = ""
    token_ttl: float = 30 * 86400.0
    auth_timeout: float = 10.0
    idle_timeout: float = 60.0
    write_timeout: float = 10.0
    max_connections_per_user: int = 3
    max_frame_bytes: int = 1 << 20
    send_queue_size: int = 100
    rate_limit: float = 50.0
    rate_burst: int = 100
    sync_page_size: int = 100
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    max_body_bytes: int = 1 << 20
    log_level: str = "info"
    test_endpoints: bool = False


HELP: dict[str, str] = {
    "host": "address to listen on",
    "port": "TCP port to listen on (0 picks a free one)",
    "database_url": "store: sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
    "bus_url": "bus between nodes: memory://",
    "jwt_secret": "accept HS256 JWTs signed with this secret (sub = user id)",
    "jwt_public_key_file": "accept RS256 JWTs verified with this PEM public key",
    "token_ttl": "lifetime of access tokens issued by /api/v1/auth/login, seconds",
    "auth_timeout": "seconds a new connection has to send MsgAuth",
    "idle_timeout": "seconds without any frame before a connection is closed",
    "write_timeout": "seconds a send may block before the connection is dropped",
    "max_connections_per_user": "live connections one user may hold",
    "max_frame_bytes": "largest accepted WebSocket message, bytes (close 1009 above)",
    "send_queue_size": "frames queued per connection before it counts as a slow consumer",
    "rate_limit": "frames per second per connection (token bucket refill)",
    "rate_burst": "token bucket size per connection",
    "sync_page_size": "messages per MsgSyncRsp page",
    "allowed_origins": "Origins allowed to open /ws from a browser ('*' = any); same-host "
                       "origins and clients without Origin are always allowed",
    "max_body_bytes": "largest accepted HTTP request body, bytes (413 above)",
    "log_level": "debug, info, warning or error",
    "test_endpoints": "also serve test-only endpoints (the WebSocket echo at /test/echo "
                      "for protocol-compliance runs); never enable in production",
}


def _env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Settings.__struct_fields__:
        raw = environ.get("TIDINGS_" + name.upper())
        if raw is not None:
            values[name] = _split(name, raw)
    return values


def _split(name: str, raw: str) -> Any:
    if name == "allowed_origins":
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def load_settings(config_file: str | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build settings from a TOML file, env vars and explicit overrides.

    ``config_file`` defaults to ``$TIDINGS_CONFIG`` if set. Raise ``ValueError``
    with the offending setting named if a value has the wrong type.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or environ.get("TIDINGS_CONFIG")
    if path:
        with Path(path).open("rb") as fh:
            values.update({k.replace("-", "_"): v for k, v in tomllib.load(fh).items()})
    values.update(_env(environ))
    values.update({k: _split(k, v) if isinstance(v, str) else v
                   for k, v in (overrides or {}).items() if v is not None})
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid setting: {exc}") from None
