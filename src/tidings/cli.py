"""The ``tidings`` command: serve, migrate, and operator tasks."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from tidings import __version__
from tidings.cli_broker import add_broker_commands, publish, token_list, token_revoke
from tidings.cli_config import add_config_commands, config_command
from tidings.cli_errors import opened_store, unexpected
from tidings.cli_serve import check_port_free, run, serve
from tidings.cli_webhooks import add_webhook_commands, run_webhooks
from tidings.config import HELP, Loaded, Settings, SettingsError, resolve

log = logging.getLogger("tidings")

_EPILOG = """Every setting can also come from a TOML file (--config, or $TIDINGS_CONFIG)
and from an environment variable TIDINGS_<NAME>; flags win over env vars, which
win over the file. Example: TIDINGS_DATABASE_URL=postgresql://localhost/tidings."""


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``tidings: …``), exit status 2."""

    def error(self, message: str) -> Any:
        """Print the problem and where to read the usage; exit 2."""
        self.exit(2, f"tidings: {message} (see: {self.prog} --help)\n")


def _add_settings(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    defaults = Settings()
    for name in names:
        default = getattr(defaults, name)
        shown = ",".join(default) if isinstance(default, list) else default
        if isinstance(default, dict):  # namespaces: JSON on the command line
            shown = "room, user, broadcast and '' (see docs/protocol.md)"
        help_ = f"{HELP[name]} [env TIDINGS_{name.upper()}; default: {shown!r}]"
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, default=None, help=help_,
                                action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_,
                                metavar="VALUE" if isinstance(default, str | list) else "N")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = Parser(prog="tidings", description="Tidings real-time server.", epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a node (migrates the store first)",
                           description="Serve /ws, the HTTP API and /metrics on one port.",
                           epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--config", help="TOML file of settings")
    _add_settings(serve, list(Settings.__struct_fields__))

    migrate = sub.add_parser("migrate", help="apply pending schema migrations")
    migrate.add_argument("--config", help="TOML file of settings")
    _add_settings(migrate, ["database_url"])

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action",
                                                                      required=True)
    add = user.add_parser("add", help="create a user (password from --password, "
                                      "$TIDINGS_PASSWORD or a prompt)")
    add.add_argument("name")
    add.add_argument("--password")
    add.add_argument("--config", help="TOML file of settings")
    _add_settings(add, ["database_url"])

    token = sub.add_parser("token", help="manage access tokens").add_subparsers(
        dest="action", required=True)
    create = token.add_parser("create", help="issue an access token for a user; printed once")
    create.add_argument("--user", required=True, help="user name")
    create.add_argument("--name", default="cli", help="a label for the token")
    create.add_argument("--device-id", dest="token_device", help="bind the token to a device")
    create.add_argument("--ttl", type=float, default=None, help="lifetime in seconds")
    create.add_argument("--scopes", default=None,
                        help="comma-separated scopes: admin, publish:<pattern>, "
                             "subscribe:<pattern> (default: every right of the user)")
    create.add_argument("--device-info", action="append", default=[], metavar="KEY=VALUE",
                        help="device information (repeatable), e.g. platform=linux")
    create.add_argument("--config", help="TOML file of settings")
    _add_settings(create, ["database_url", "token_ttl"])
    add_broker_commands(sub, token, _add_settings)
    add_webhook_commands(sub, _add_settings)

    desks = sub.add_parser("desks", help="the desk map (seed 000)").add_subparsers(
        dest="action", required=True)
    demo = desks.add_parser("demo", help="load a demo building: floors, departments, "
                                         "employees and desks")
    demo.add_argument("--building", default="HQ", help="building name [default: HQ]")
    demo.add_argument("--floors", type=int, default=3, help="floors [default: 3]")
    demo.add_argument("--desks-per-floor", type=int, default=100,
                      help="desks on each floor [default: 100]")
    demo.add_argument("--config", help="TOML file of settings")
    _add_settings(demo, ["database_url"])
    add_config_commands(sub, _add_settings)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of the command line, or exit naming each bad one."""
    return _loaded(args).settings


def _loaded(args: argparse.Namespace) -> Loaded:
    """The settings of the command line with their sources, or exit naming each bad one."""
    overrides = {k: v for k, v in vars(args).items() if k in Settings.__struct_fields__}
    try:
        return resolve(args.config, overrides=overrides)
    except SettingsError as exc:
        raise SystemExit(f"tidings: {exc}") from None


def _configure_logging(settings: Settings) -> None:
    from tidings import logs

    logs.configure(settings.log_level, settings.log_format)


def config_source(loaded: Loaded) -> str:
    """Where the settings came from, for the start line: names, never values."""
    by_kind: dict[str, list[str]] = {}
    for source in loaded.sources.values():
        kind, _, name = source.partition(" ")
        if kind != "default" and name not in by_kind.setdefault(kind, []):
            by_kind[kind].append(name)
    parts = [f"{kind} {' '.join(names)}" for kind, names in by_kind.items() if names]
    if loaded.config_file and "file" not in by_kind:
        parts.insert(0, f"file {loaded.config_file} (empty)")
    return "; ".join(parts) or "defaults only"


async def _migrate(settings: Settings) -> None:
    async with opened_store(settings.database_url) as store:
        applied = await store.migrate()
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")


async def _user_add(settings: Settings, name: str, password: str) -> None:
    from tidings.auth import hash_password
    from tidings.store import Conflict

    async with opened_store(settings.database_url) as store:
        await store.migrate()
        try:
            user = await store.create_user(name, await hash_password(password))
        except Conflict:
            raise SystemExit(f"tidings: user {name!r} already exists") from None
    print(f"user {user.username} created with id {user.id}")


async def _token_create(settings: Settings, args: argparse.Namespace) -> None:
    from tidings.auth import Authenticator

    ttl_ms = None if args.ttl is None else int(args.ttl * 1000)
    scopes, device_info = _scopes(args.scopes), _device_info(args.device_info)
    async with opened_store(settings.database_url) as store:
        await store.migrate()
        user = await store.get_user_by_name(args.user)
        if user is None:
            raise SystemExit(f"tidings: no user {args.user!r}")
        token, expires_at = await Authenticator(store, settings).issue(
            user.id, name=args.name, device_id=args.token_device, ttl_ms=ttl_ms,
            scopes=scopes, device_info=device_info)
    print(token)
    print(f"user {user.username} (id {user.id}); expires at {expires_at} ms; "
          "shown once, store it now", file=sys.stderr)


def _scopes(raw: str | None) -> tuple[str, ...] | None:
    """``--scopes`` as a tuple; exit on an invalid scope."""
    from tidings.channels.access import valid_scope

    if raw is None:
        return None
    scopes = tuple(s.strip() for s in raw.split(",") if s.strip())
    for scope in scopes:
        if not valid_scope(scope):
            raise SystemExit(f"tidings: invalid scope {scope!r}: use admin, "
                             "publish:<pattern> or subscribe:<pattern>")
    return scopes


def _device_info(pairs: list[str]) -> dict[str, str]:
    """``--device-info KEY=VALUE`` options as a dict; exit on a malformed one."""
    info: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"tidings: --device-info wants KEY=VALUE, got {pair!r}")
        info[key] = value
    return info


async def _desks_demo(settings: Settings, args: argparse.Namespace) -> None:
    from tidings.apps.desks.db import open_desk_db
    from tidings.apps.desks.demo import DemoExists, load_demo

    if not 1 <= args.floors <= 100 or not 1 <= args.desks_per_floor <= 1000:
        raise SystemExit("tidings: --floors must be in [1, 100], --desks-per-floor in [1, 1000]")
    async with opened_store(settings.database_url) as store:
        await store.migrate()
    db = open_desk_db(settings.database_url)
    try:
        made = await load_demo(db, building=args.building, floors=args.floors,
                               desks_per_floor=args.desks_per_floor)
    except DemoExists as exc:
        raise SystemExit(f"tidings: {exc}") from None
    finally:
        await db.close()
    print(f"building {args.building!r} (id {made['building_id']}): {made['floors']} floors, "
          f"{made['departments']} departments, {made['employees']} employees, "
          f"{made['workstations']} workstations")


def _check_username(name: str) -> None:
    """Exit unless ``name`` passes the rule of ``/api/v1/auth/register``: a user the
    CLI creates must be able to log in over HTTP."""
    import msgspec

    from tidings.api.routes import Username
    from tidings.plain_errors import in_words

    try:
        msgspec.convert(name, Username)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"tidings: invalid user name {name!r}: use 1 to 64 letters, "
                         f"digits or . _ @ - ({in_words(exc)})") from None


def _check_password(password: str) -> None:
    """Exit unless ``password`` passes the rule of ``/api/v1/auth/register``."""
    import msgspec

    from tidings.api.routes import Password
    from tidings.plain_errors import in_words

    if len(password) < 8:
        raise SystemExit("tidings: the password needs at least 8 characters")
    try:
        msgspec.convert(password, Password)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"tidings: invalid password: {in_words(exc)}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``tidings`` command: exits 0, or non-zero with one line
    saying what is wrong (never a traceback)."""
    args = build_parser().parse_args(argv)
    if args.command == "config":
        raise SystemExit(config_command(args))
    if args.command == "token" and args.action == "create" and args.ttl is not None \
            and not 0 < args.ttl < 100 * 365 * 86400:
        raise SystemExit("tidings: --ttl must be a number of seconds above 0 (and below a "
                         "century)")
    loaded = _loaded(args)
    _configure_logging(loaded.settings)
    try:
        _dispatch(args, argv, loaded)
    except KeyboardInterrupt:
        raise SystemExit("tidings: interrupted") from None
    except Exception as exc:
        raise unexpected(exc) from None


def _dispatch(args: argparse.Namespace, argv: Sequence[str] | None, loaded: Loaded) -> None:
    settings = loaded.settings
    if args.command == "serve":
        from tidings import workers

        problem = workers.check(settings)
        if problem:
            raise SystemExit(f"tidings: {problem}")
        if not workers.is_worker():
            check_port_free(settings.host, settings.port)
            if settings.workers == 1:  # workers > 1: each would want the port; refused below
                check_port_free(settings.metrics_host, settings.metrics_port)
        if settings.workers > 1 and not workers.is_worker():
            run(_migrate(settings))  # once, before the workers race to do it
            raise SystemExit(workers.supervise(
                list(sys.argv[1:] if argv is None else argv), settings.workers))
        run(serve(settings, config_source(loaded)))
    elif args.command == "migrate":
        run(_migrate(settings))
    elif args.command == "user":
        _check_username(args.name)  # before prompting for a password
        password = args.password or os.environ.get("TIDINGS_PASSWORD") or getpass.getpass()
        _check_password(password)
        run(_user_add(settings, args.name, password))
    elif args.command == "desks":
        run(_desks_demo(settings, args))
    elif args.command == "publish":
        run(publish(args))
    elif args.command == "webhooks":
        run(run_webhooks(settings, args, opened_store))
    elif args.action == "list":
        run(token_list(settings, args, opened_store))
    elif args.action == "revoke":
        run(token_revoke(settings, args, opened_store))
    else:
        run(_token_create(settings, args))
