"""Settings: defaults, then an optional TOML file, then ``TIDINGS_*`` env vars,
then command-line flags — each later source wins.

Every field below is one setting; its env var is ``TIDINGS_`` + the upper-case
name and its flag is ``--`` + the name with dashes. Lists are comma-separated
in env vars and flags.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from tidings import config_rules
from tidings.channels.namespaces import Namespace, default_namespaces
from tidings.plain_errors import in_words

PROXY_HEADERS = ("Cookie", "Authorization", "User-Agent", "Origin", "Accept-Language",
                 "X-Request-Id")
"""Request headers passed to the proxies unless ``proxy_headers`` says otherwise."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """All Tidings settings with their defaults."""

    host: str = "127.0.0.1"
    port: int = 8443
    database_url: str = "sqlite:///tidings.db"
    bus_url: str = "memory://"
    jwt_secret: str = ""
    jwt_public_key_file: str = ""
    # JWTs issued and refreshed (issue 21 item 4)
    jwt_algorithm: Literal["", "HS256", "RS256", "ES256", "EdDSA"] = ""
    jwt_private_key_file: str = ""
    jwt_key_id: str = ""
    jwt_ttl: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    refresh_token_ttl: Annotated[float, msgspec.Meta(gt=0)] = 30 * 86400.0
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway: Annotated[float, msgspec.Meta(ge=0, le=300)] = 0.0
    jwks_url: str = ""
    jwks_cache_ttl: Annotated[float, msgspec.Meta(gt=0)] = 300.0
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
    # operations: logs and metrics (issue 18)
    log_format: str = "text"
    access_log: bool = False
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # backend hooks and webhooks (issue 21)
    proxy_connect_url: str = ""
    proxy_subscribe_url: str = ""
    proxy_publish_url: str = ""
    proxy_rpc_url: str = ""
    proxy_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    proxy_connect_on_error: Literal["refuse", "allow"] = "refuse"
    proxy_subscribe_on_error: Literal["refuse", "allow"] = "refuse"
    proxy_publish_on_error: Literal["refuse", "allow"] = "refuse"
    proxy_secret: str = ""
    proxy_headers: list[str] = msgspec.field(default_factory=lambda: list(PROXY_HEADERS))
    hooks_module: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_events: list[str] = msgspec.field(
        default_factory=lambda: ["message.read", "user.*", "takeover.*", "workstation.*"])
    webhook_max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 8
    webhook_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    webhook_backoff: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    webhook_backoff_max: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    webhook_lease: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    webhook_poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    # faults and memory (issue 18 items 1 and 8)
    send_queue_bytes: Annotated[int, msgspec.Meta(ge=65536)] = 4 << 20


HELP: dict[str, str] = {
    "host": "address to listen on",
    "port": "TCP port to listen on (0 picks a free one)",
    "database_url": "store: sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
    "bus_url": "bus between nodes: memory://, redis://HOST:PORT/DB or postgresql://...",
    "jwt_secret": "accept HS256 JWTs signed with this secret (sub = user id)",
    "jwt_public_key_file": "accept JWTs verified with this PEM public key (RSA: RS256, "
                           "EC P-256: ES256, Ed25519: EdDSA)",
    "jwt_algorithm": "algorithm of the JWTs /api/v1/auth/token issues: HS256 (jwt_secret), "
                     "RS256, ES256 or EdDSA (jwt_private_key_file); empty: the key's own",
    "jwt_private_key_file": "sign issued JWTs with this PEM private key (unencrypted; RSA, "
                            "EC P-256 or Ed25519); its public half verifies them",
    "jwt_key_id": "kid header of issued JWTs (empty: none)",
    "jwt_ttl": "lifetime of JWTs issued by /api/v1/auth/token and refresh, seconds",
    "refresh_token_ttl": "lifetime of refresh tokens (tdr_...), seconds; each use rotates it",
    "jwt_audience": "aud of issued JWTs; when set, a JWT without this aud is refused",
    "jwt_issuer": "iss of issued JWTs; when set, a JWT without this iss is refused",
    "jwt_leeway": "seconds of clock difference allowed when checking exp, nbf and iat "
                  "(0-300)",
    "jwks_url": "also accept JWTs signed by a key of this JSON Web Key Set "
                "(https://.../jwks.json), chosen by the token's kid",
    "jwks_cache_ttl": "seconds the JWKS is kept before it is fetched again (a token with "
                      "an unknown kid fetches it at once, at most once a second)",
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
    "log_format": "text (time level logger: message) or json (one object a line, with "
                  "request, connection and user ids)",
    "access_log": "log every HTTP request and every /ws close (code, duration, frames) "
                  "to the tidings.access logger",
    "metrics_port": "also serve GET /metrics alone on this port, for Prometheus on an "
                    "internal network (0: off)",
    "metrics_host": "address the metrics port listens on",
    # backend hooks and webhooks (docs/integration.md)
    "proxy_connect_url": "POST each MsgAuth (and Socket.IO handshake) to this URL of the "
                         "application, which may refuse it or set the user, device, "
                         "scopes and data (empty: off)",
    "proxy_subscribe_url": "POST each Subscribe to this URL, which may refuse it (empty: off)",
    "proxy_publish_url": "POST each publication (/ws and HTTP) to this URL, which may refuse "
                         "it or rewrite its data (empty: off)",
    "proxy_rpc_url": "POST each Rpc frame to this URL; its result goes back as RpcRsp "
                     "(empty: Rpc is refused)",
    "proxy_timeout": "seconds a proxy call (or a Python hook) may take",
    "proxy_connect_on_error": "when the connect backend fails: refuse (close 1011, retry) or "
                              "allow (the token alone decides)",
    "proxy_subscribe_on_error": "when the subscribe backend fails: refuse or allow",
    "proxy_publish_on_error": "when the publish backend fails: refuse or allow (data kept)",
    "proxy_secret": "sign proxy calls with HMAC-SHA256 and this secret "
                    "(X-Tidings-Signature: t=...,v1=...)",
    "proxy_headers": "client request headers passed to the proxies (comma-separated)",
    "hooks_module": "dotted path of a Python module whose functions connect, subscribe, "
                    "publish, rpc are called instead of the proxy URLs (for embedding)",
    "webhook_url": "POST each event of webhook_events to this URL, at least once, from an "
                   "outbox in the store (empty: off; SQLite and PostgreSQL stores only)",
    "webhook_secret": "sign webhooks with HMAC-SHA256 and this secret "
                      "(X-Tidings-Signature: t=...,v1=...)",
    "webhook_events": "events to send (comma-separated, shell patterns): message.stored, "
                      "message.read, user.online, user.offline, publication, takeover.*, "
                      "workstation.*, or * for all; message.stored and publication (one "
                      "webhook per chat or publication) are not in the default",
    "webhook_max_attempts": "tries of one webhook before it is dead (replay with "
                            "`tidings webhooks replay`)",
    "webhook_timeout": "seconds the webhook receiver has to answer 2xx",
    "webhook_backoff": "seconds before the first retry; doubled after each failed try",
    "webhook_backoff_max": "longest wait between two tries, seconds",
    "webhook_lease": "seconds a node holds the webhooks it is sending; after that (a killed "
                     "node) any node takes them over",
    "webhook_poll_interval": "seconds between two looks at the outbox when it is idle",
    "send_queue_bytes": "bytes of frames queued per connection before it counts as a slow "
                        "consumer (with send_queue_size, whichever comes first)",
}


_DEFAULTS = Settings()

SECRETS = ("secret", "password", "private")
"""A setting whose name contains one of these is masked in ``tidings config show``."""


class Loaded(NamedTuple):
    """Settings with where each value came from."""

    settings: Settings
    sources: dict[str, str]
    """Setting name -> ``default``, ``file PATH``, ``env TIDINGS_NAME`` or ``flag --name``."""
    config_file: str | None


class SettingsError(ValueError):
    """Settings that cannot be used; ``problems`` holds one line per bad setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


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
            raise SettingsError([f"invalid setting: namespaces is not JSON ({exc})"]) from None
    if isinstance(getattr(_DEFAULTS, name, None), list):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _read_file(path: str) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SettingsError([f"cannot read config file {path!r}: "
                             f"{(exc.strerror or str(exc)).lower()}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError([f"config file {path!r} is not valid TOML: {exc}"]) from None
    values = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = [k for k in values if k not in Settings.__struct_fields__]
    if unknown:
        raise SettingsError([_unknown(name, path) for name in unknown])
    return values


def _unknown(name: str, path: str) -> str:
    close = difflib.get_close_matches(name, Settings.__struct_fields__, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown setting {name!r} in config file {path!r}{hint}"


def _source_text(source: str) -> str:
    return "default" if source == "default" else f"from {source}"


def _convert(values: dict[str, Any], sources: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    types = {f.name: f.type for f in msgspec.structs.fields(Settings)}
    converted: dict[str, Any] = {}
    errors: list[str] = []
    for name, value in values.items():
        try:
            converted[name] = msgspec.convert(value, types[name], strict=False)
        except msgspec.ValidationError as exc:
            errors.append(f"invalid setting {name} = {value!r} ({_source_text(sources[name])}): "
                          f"{in_words(exc)}")
    return converted, errors


def resolve(config_file: str | None = None, environ: Mapping[str, str] | None = None,
            overrides: Mapping[str, Any] | None = None) -> Loaded:
    """Build settings from a TOML file, env vars and explicit overrides (flags), and
    check each value against its rule (:mod:`tidings.config_rules`).

    ``config_file`` defaults to ``$TIDINGS_CONFIG`` if set. Raise
    :class:`SettingsError` naming each bad setting, its source and what is wrong.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = dict.fromkeys(Settings.__struct_fields__, "default")
    path = config_file or environ.get("TIDINGS_CONFIG")
    if path:
        for name, value in _read_file(path).items():
            values[name], sources[name] = value, f"file {path}"
    for name, value in _env(environ).items():
        values[name], sources[name] = value, f"env TIDINGS_{name.upper()}"
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _split(name, value) if isinstance(value, str) else value
            sources[name] = "flag --" + name.replace("_", "-")
    converted, errors = _convert(values, sources)
    if errors:
        raise SettingsError(errors)
    settings = Settings(**converted)
    found = config_rules.problems({name: getattr(settings, name)
                                   for name in Settings.__struct_fields__})
    if found:
        raise SettingsError([
            f"invalid setting {name} = {getattr(settings, name)!r} "
            f"({_source_text(sources[name])}): {problem}" for name, problem in found.items()])
    return Loaded(settings, sources, path)


def load_settings(config_file: str | None = None, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings of :func:`resolve`, without their sources."""
    return resolve(config_file, environ, overrides).settings


def masked(name: str, value: Any) -> Any:
    """``value`` fit to print: secrets and the passwords in URLs replaced by ``***``."""
    if any(word in name for word in SECRETS):
        return "***" if value else value
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        credentials, _, host = rest.rpartition("@")
        user, sep, _password = credentials.partition(":")
        return f"{scheme}://{user}{':***' if sep else ''}@{host}"
    return value
