"""``tidings config show`` and ``tidings config check``: the effective settings and
where each comes from, and a fail-fast check of a deployment's configuration.

Both read the same sources as ``serve`` (defaults < TOML file < ``TIDINGS_*`` env
vars < flags) plus, optionally, an env file of ``NAME=value`` lines as Docker's
``--env-file`` and systemd's ``EnvironmentFile=`` take. Secrets are masked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tidings.config import Loaded, Settings, SettingsError, masked, resolve

AddSettings = Callable[[argparse.ArgumentParser, Sequence[str]], None]


def add_config_commands(sub: Any, add_settings: AddSettings) -> None:
    """Add ``config show`` and ``config check`` to the parsers."""
    config = sub.add_parser("config", help="show or check the effective settings").\
        add_subparsers(dest="action", required=True)
    show = config.add_parser("show", help="print every setting's effective value and its "
                                          "source (default, file, env, flag); secrets masked")
    check = config.add_parser("check", help="validate a configuration (TOML file, env vars, "
                                            "env file, flags); exit 1 naming each problem")
    for parser in (show, check):
        parser.add_argument("--config", help="TOML file of settings")
        parser.add_argument("--env-file", help="file of TIDINGS_NAME=value lines (as for "
                                               "docker --env-file or systemd)")
        parser.add_argument("--json", action="store_true",
                            help="one JSON object: {name: {value, source}}")
        add_settings(parser, list(Settings.__struct_fields__))


def read_env_file(path: str) -> dict[str, str]:
    """``NAME=value`` lines of ``path`` (blank lines and ``#`` comments skipped, one
    level of matching quotes removed); raise ``ValueError`` naming a bad line."""
    values: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read env file {path!r}: {why.lower()}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not name.strip():
            raise ValueError(f"env file {path!r} line {number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def render(loaded: Loaded, *, as_json: bool) -> str:
    """The effective settings, one ``name = value  # source`` line each (TOML-like),
    or one JSON object."""
    rows = {name: (masked(name, getattr(loaded.settings, name)), loaded.sources[name])
            for name in Settings.__struct_fields__}
    if as_json:
        return json.dumps({name: {"value": _plain(value), "source": source}
                           for name, (value, source) in rows.items()}, sort_keys=True)
    width = max(len(name) for name in rows)
    lines = [f"{name:<{width}} = {json.dumps(_plain(value))}  # {source}"
             for name, (value, source) in rows.items()]
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value)


def config_command(args: argparse.Namespace) -> int:
    """Run ``config show`` or ``config check``; the exit status."""
    environ: dict[str, str] = dict(os.environ)
    overrides = {k: v for k, v in vars(args).items() if k in Settings.__struct_fields__}
    try:
        if args.env_file:
            environ.update(read_env_file(args.env_file))
        loaded = resolve(args.config, environ=environ, overrides=overrides)
    except SettingsError as exc:
        if args.action == "show":
            print(f"tidings: {exc}", file=sys.stderr)
            return 1
        for problem in exc.problems:
            print(f"tidings: {problem}", file=sys.stderr)
        print(f"tidings: configuration has {len(exc.problems)} problem"
              f"{'s' if len(exc.problems) > 1 else ''}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 1
    if args.action == "check" and not args.json:
        where = f" (config file {loaded.config_file})" if loaded.config_file else ""
        print(f"configuration OK{where}; effective settings:", file=sys.stderr)
    print(render(loaded, as_json=args.json))
    return 0
