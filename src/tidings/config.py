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
from typing import Annotated, Any

import msgspec

from tidings.channels.namespaces import Namespace, default_namespaces


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
    # channels (broker, seed 003)
    namespaces: dict[str, Namespace] = msgspec.field(default_factory=default_namespaces)
    max_subscriptions: int = 100
    max_publication_bytes: int = 65536
    http_rate_limit: float = 50.0
    http_rate_burst: int = 200
    # collaborative editing (seed 002)
    takeover_timeout: float = 30.0
    editing_session_ttl: float = 60.0
    editing_sweep_interval: float = 1.0
    shutdown_timeout: float = 30.0
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # desk map (seed 000)
    cache_url: str = ""
    cache_ttl: float = 30.0
    admin_users: list[str] = msgspec.field(default_factory=list)
    # cluster
    heartbeat_interval: float = 5.0
    node_timeout: float = 15.0
    workers: int = 1
    # desk map roles (seed 000, issue 15)
    desk_admins: list[str] = msgspec.field(default_factory=list)
    # seed edges: CORS, connection caps (issue 15 items 7 and 9)
    cors_origins: list[str] = msgspec.field(default_factory=list)
    max_connections: Annotated[int, msgspec.Meta(ge=0)] = 100_000
    max_connections_per_ip: Annotated[int, msgspec.Meta(ge=0)] = 20_000
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    # seed fidelity (issue 15): Redis message retention, the apps' SQL store
    stream_retention: float = 30 * 86400.0
    stream_trim_interval: float = 3600.0
    apps_database_url: str = ""
    apps_enabled: bool = True
    # faults and memory (issue 18 items 1 and 8)
    send_queue_bytes: Annotated[int, msgspec.Meta(ge=65536)] = 4 << 20


HELP: dict[str, str] = {
    "host": "address to listen on",
    "port": "TCP port to listen on (0 picks a free one)",
    "database_url": "store: sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
    "bus_url": "bus between nodes: memory://, redis://HOST:PORT/DB or postgresql://...",
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
    "namespaces": "channel namespaces as JSON or a TOML table: {\"room\": {\"subscribe\": "
                  "\"any\", \"publish\": \"any\", \"history_size\": 1000, \"history_ttl\": "
                  "86400, \"presence\": true}, …}; replaces the defaults",
    "max_subscriptions": "channels one connection may subscribe to",
    "max_publication_bytes": "largest publication data (JSON-encoded), bytes",
    "http_rate_limit": "HTTP API requests per second per token (token bucket refill)",
    "http_rate_burst": "HTTP API token bucket size per token",
    "test_endpoints": "also serve test-only endpoints (the WebSocket echo at /test/echo "
                      "for protocol-compliance runs); never enable in production",
    "takeover_timeout": "seconds an editor has to answer a takeover request before it expires",
    "editing_session_ttl": "seconds an editing session lives without a heartbeat (an open "
                           "editing WebSocket counts as one)",
    "editing_sweep_interval": "seconds between two runs of the job expiring takeover "
                              "requests and dropping silent editing sessions",
    "shutdown_timeout": "seconds SIGTERM may take to drain (flush, close connections "
                        "with 1001) before the node exits anyway",
    "tls_cert_file": "serve HTTPS and wss:// with this PEM certificate (chain); "
                     "needs tls_key_file",
    "tls_key_file": "PEM private key (unencrypted) of tls_cert_file",
    "cache_url": "redis://HOST:PORT/DB caching the desk map's read-heavy lists (empty: off)",
    "cache_ttl": "seconds a cached desk list lives at most (it is dropped on any change)",
    "admin_users": "usernames allowed to use the operator dashboard and /api/v1/admin/*",
    "heartbeat_interval": "seconds between a node's heartbeats in the cluster registry",
    "node_timeout": "seconds after its last heartbeat that a node counts as dead (its "
                    "users go offline, its connection slots free up)",
    "workers": "serve: start this many nodes sharing the port (SO_REUSEPORT); needs a "
               "redis:// or postgresql:// bus",
    "desk_admins": "usernames allowed to create, edit and delete desks and the organisation "
                   "(comma-separated in TIDINGS_DESK_ADMINS); empty: every authenticated "
                   "user may; tokens with the admin scope always may",
    # seed edges: CORS, connection caps
    "cors_origins": "Origins of pages on other sites that may call the REST API (/api/...) "
                    "and open /socket.io (CORS; '*' = any); empty: same-site pages only",
    "max_connections": "open sockets (/ws, /socket.io, editing) this node accepts in all; "
                       "more are refused with 429 before the upgrade (0 = no cap)",
    "max_connections_per_ip": "open sockets one client address may hold on this node; more "
                              "are refused with 429 before the upgrade (0 = no cap)",
    "trusted_proxies": "addresses or CIDRs of reverse proxies whose X-Forwarded-For names "
                       "the client address (for max_connections_per_ip)",
    "stream_retention": "Redis store: seconds a chat message is kept (seed 004: 30 days); "
                        "older ones are trimmed from the streams (XTRIM MINID); 0 keeps all",
    "stream_trim_interval": "Redis store: seconds between two retention passes",
    "apps_database_url": "SQL database of the desk map and collaborative editing when the "
                         "store is Redis (sqlite:///PATH or postgresql://...); empty: the "
                         "store's own database, or beside a Redis store "
                         "sqlite:///tidings-apps.db on a lone node (nodes sharing a bus "
                         "must set it, or apps_enabled=false)",
    "apps_enabled": "serve the desk map and collaborative editing (false: leave them off)",
    "send_queue_bytes": "bytes of frames queued per connection before it counts as a slow "
                        "consumer (with send_queue_size, whichever comes first)",
}


# comma-separated in env vars and flags
_LIST_SETTINGS = ("allowed_origins", "admin_users", "desk_admins", "cors_origins",
                  "trusted_proxies")


def _env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Settings.__struct_fields__:
        raw = environ.get("TIDINGS_" + name.upper())
        if raw is not None:
            values[name] = _split(name, raw)
    return values


def _split(name: str, raw: str) -> Any:
    if name == "namespaces":
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValueError(f"invalid setting: namespaces is not JSON: {exc}") from None
    if name in _LIST_SETTINGS:
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
