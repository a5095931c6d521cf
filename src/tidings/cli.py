"""The ``tidings`` command: serve, migrate, and operator tasks."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from tidings import __version__
from tidings.cli_broker import add_broker_commands, publish, token_list, token_revoke
from tidings.cli_webhooks import add_webhook_commands, run_webhooks
from tidings.config import HELP, Settings, load_settings

if TYPE_CHECKING:
    from tidings.store import Store

log = logging.getLogger("tidings")

_EPILOG = """Every setting can also come from a TOML file (--config, or $TIDINGS_CONFIG)
and from an environment variable TIDINGS_<NAME>; flags win over env vars, which
win over the file. Example: TIDINGS_DATABASE_URL=postgresql://localhost/tidings."""


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
    parser = argparse.ArgumentParser(prog="tidings", description="Tidings real-time server.",
                                     epilog=_EPILOG)
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
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in vars(args).items() if k in Settings.__struct_fields__}
    return load_settings(args.config, overrides=overrides)


def _configure_logging(level: str) -> None:
    from tidings.security import RedactSecrets

    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())


def _open_store(url: str) -> Store:
    """The store named by ``url``; exit with a message (no traceback) if it names none."""
    from tidings.store import open_store

    try:
        return open_store(url)
    except ValueError as exc:
        raise SystemExit(f"tidings: {exc}") from None


async def _serve(settings: Settings) -> None:
    from tidings.server import Server

    try:
        server = Server(settings)  # opens store and bus by URL, reads the JWT key file
    except (ValueError, OSError) as exc:
        raise SystemExit(f"tidings: {exc}") from None
    try:
        await server.start()
    except OSError as exc:  # port in use, database unreachable
        await server.stop()
        raise SystemExit(f"tidings: cannot start: {exc}") from None
    _tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    await stop.wait()
    # The drain keeps within shutdown_timeout; the bound here covers a store or bus
    # that hangs while closing (what was acknowledged is durable already).
    try:
        async with asyncio.timeout(settings.shutdown_timeout):
            await server.stop()
    except TimeoutError:
        raise SystemExit("tidings: shutdown did not finish in time; exiting anyway") from None


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        log.info("%s received: shutting down (draining; a second signal exits at once)",
                 sig.name)
        stop.set()
        return
    log.warning("%s again: exiting without draining", sig.name)
    logging.shutdown()
    os._exit(1)


async def _migrate(settings: Settings) -> None:
    store = _open_store(settings.database_url)
    try:
        applied = await store.migrate()
        print("applied: " + ", ".join(applied) if applied else "schema is up to date")
    finally:
        await store.close()


async def _user_add(settings: Settings, name: str, password: str) -> None:
    from tidings.auth import hash_password
    from tidings.store import Conflict

    store = _open_store(settings.database_url)
    try:
        await store.migrate()
        user = await store.create_user(name, await hash_password(password))
        print(f"user {user.username} created with id {user.id}")
    except Conflict:
        raise SystemExit(f"tidings: user {name!r} already exists") from None
    finally:
        await store.close()


async def _token_create(settings: Settings, args: argparse.Namespace) -> None:
    from tidings.auth import Authenticator

    store = _open_store(settings.database_url)
    try:
        await store.migrate()
        user = await store.get_user_by_name(args.user)
        if user is None:
            raise SystemExit(f"tidings: no user {args.user!r}")
        ttl_ms = None if args.ttl is None else int(args.ttl * 1000)
        token, expires_at = await Authenticator(store, settings).issue(
            user.id, name=args.name, device_id=args.token_device, ttl_ms=ttl_ms,
            scopes=_scopes(args.scopes), device_info=_device_info(args.device_info))
        print(token)
        print(f"user {user.username} (id {user.id}); expires at {expires_at} ms; "
              "shown once, store it now", file=sys.stderr)
    finally:
        await store.close()


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
    store = _open_store(settings.database_url)
    try:
        await store.migrate()
    finally:
        await store.close()
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

    try:
        msgspec.convert(name, Username)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"tidings: invalid user name {name!r}: 1-64 letters, digits "
                         f"or . _ @ - ({exc})") from None


def _check_password(password: str) -> None:
    """Exit unless ``password`` passes the rule of ``/api/v1/auth/register``."""
    import msgspec

    from tidings.api.routes import Password

    if len(password) < 8:
        raise SystemExit("tidings: the password needs at least 8 characters")
    try:
        msgspec.convert(password, Password)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"tidings: invalid password: {exc}") from None


GC_YOUNG_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a serving node.

    A busy node makes a few dozen container objects per chat, each alive for the
    ~100 ms until its commit. With the default thresholds most of them were still
    alive at a young collection, got promoted, and so made full collections (every
    object of the process) frequent. Objects made while starting live as long as the
    node, so they are frozen out of collections, and young collections wait for more
    allocations: with the per-chat structs untracked, 15-20 % more chats acknowledged
    per CPU-second (bench: durable chat).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``tidings`` command."""
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"tidings: {exc}") from None
    _configure_logging(settings.log_level)
    if args.command == "serve":
        from tidings import workers

        problem = workers.check(settings)
        if problem:
            raise SystemExit(f"tidings: {problem}")
        if settings.workers > 1 and not workers.is_worker():
            _run(_migrate(settings))  # once, before the workers race to do it
            raise SystemExit(workers.supervise(
                list(sys.argv[1:] if argv is None else argv), settings.workers))
        _run(_serve(settings))
    elif args.command == "migrate":
        _run(_migrate(settings))
    elif args.command == "user":
        _check_username(args.name)  # before prompting for a password
        password = args.password or os.environ.get("TIDINGS_PASSWORD") or getpass.getpass()
        _check_password(password)
        _run(_user_add(settings, args.name, password))
    elif args.command == "desks":
        _run(_desks_demo(settings, args))
    elif args.command == "publish":
        _run(publish(args))
    elif args.command == "webhooks":
        _run(run_webhooks(settings, args, _open_store))
    elif args.action == "list":
        _run(token_list(settings, args, _open_store))
    elif args.action == "revoke":
        _run(token_revoke(settings, args, _open_store))
    else:
        _run(_token_create(settings, args))
