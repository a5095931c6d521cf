"""``tidings token list|revoke`` and ``tidings publish``: the broker's operator commands.

``token`` commands work on the store directly (like ``token create``); a running
node notices a revocation within a second and closes the connections that used
the token. ``publish`` goes through a node's HTTP API, so subscribers get the
publication live.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from tidings.cli_errors import one_line, reason
from tidings.config import Settings

if TYPE_CHECKING:
    from tidings.store import Store, Token

AddSettings = Callable[[argparse.ArgumentParser, Sequence[str]], None]
OpenStore = Callable[[str], AbstractAsyncContextManager["Store"]]

DEFAULT_URL = "http://127.0.0.1:8443"


def add_broker_commands(sub: Any, token: Any, add_settings: AddSettings) -> None:
    """Add ``token list``, ``token revoke`` and ``publish`` to the parsers."""
    listing = token.add_parser("list", help="list a user's tokens (never the secrets)")
    listing.add_argument("--user", required=True, help="user name")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--config", help="TOML file of settings")
    add_settings(listing, ["database_url"])

    revoke = token.add_parser("revoke", help="revoke tokens by id; live connections using "
                                             "them close within a second (4403)")
    revoke.add_argument("ids", nargs="+", type=int, metavar="ID")
    revoke.add_argument("--user", help="only if the tokens belong to this user")
    revoke.add_argument("--config", help="TOML file of settings")
    add_settings(revoke, ["database_url"])

    publish = sub.add_parser(
        "publish", help="publish to a channel through a node's HTTP API",
        description="Publish DATA to CHANNEL. DATA is JSON if it parses as JSON (42, "
                    "'{\"a\": 1}', '\"text\"'), else it is sent as a string; '-' reads "
                    "stdin. Prints the stored offset.")
    publish.add_argument("channel")
    publish.add_argument("data")
    publish.add_argument("--type", default="message", help="publication type label")
    publish.add_argument("--idempotency-key", help="publish once even if repeated (5 min)")
    publish.add_argument("--url", default=None,
                         help=f"the node's base URL [env TIDINGS_URL; default {DEFAULT_URL}]")
    publish.add_argument("--token", default=None, help="access token [env TIDINGS_TOKEN; "
                         "prefer the env var: flags are visible in the process list]")
    publish.add_argument("--config", help="TOML file of settings")


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


def _row(token: Token) -> dict[str, Any]:
    from tidings.api.tokens import token_view

    return token_view(token)


async def token_list(settings: Settings, args: argparse.Namespace, open_store: OpenStore) -> None:
    """Print a user's tokens, newest first."""
    async with open_store(settings.database_url) as store:
        await store.migrate()
        user = await store.get_user_by_name(args.user)
        if user is None:
            raise SystemExit(f"tidings: no user {args.user!r}")
        rows = [_row(t) for t in await store.list_tokens(user.id)]
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return
    print(f"{'ID':>6}  {'STATUS':8} {'NAME':20} {'DEVICE':12} {'EXPIRES':21} "
          f"{'LAST USED':21} SCOPES")
    for r in rows:
        scopes = "(all)" if r["scopes"] is None else " ".join(r["scopes"]) or "(none)"
        print(f"{r['id']:>6}  {r['status']:8} {r['name'][:20]:20} "
              f"{(r['device_id'] or '-')[:12]:12} {_when(r['expires_at']):21} "
              f"{_when(r['last_used_at']):21} {scopes}")


async def token_revoke(settings: Settings, args: argparse.Namespace,
                       open_store: OpenStore) -> None:
    """Revoke tokens by id; report which were revoked now."""
    from tidings.store import now_ms

    async with open_store(settings.database_url) as store:
        await store.migrate()
        owner = None
        if args.user is not None:
            user = await store.get_user_by_name(args.user)
            if user is None:
                raise SystemExit(f"tidings: no user {args.user!r}")
            owner = user.id
        revoked = await store.revoke_tokens(owner, list(args.ids), now_ms())
    skipped = sorted(set(args.ids) - set(revoked))
    if revoked:
        print("revoked: " + ", ".join(map(str, revoked)))
    if skipped:
        print("not revoked (unknown, already revoked or another user's): "
              + ", ".join(map(str, skipped)), file=sys.stderr)
    if not revoked:
        raise SystemExit(1)


def _http_reason(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer within 30 s"
    if isinstance(exc, ValueError | aiohttp.ContentTypeError):
        return "the answer is not JSON (is it a Tidings node?)"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.InvalidURL):
        return "not a valid URL"
    return reason(exc)


def _data(raw: str) -> Any:
    text = sys.stdin.read() if raw == "-" else raw
    try:
        return json.loads(text)
    except ValueError:
        return text


async def publish(args: argparse.Namespace) -> None:
    """POST one publication to ``/api/v1/publish`` and print its offset."""
    import aiohttp

    url = (args.url or os.environ.get("TIDINGS_URL") or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"tidings: --url must start with http:// or https://, got {url!r}")
    token = args.token or os.environ.get("TIDINGS_TOKEN")
    if not token:
        raise SystemExit("tidings: give a token with $TIDINGS_TOKEN or --token")
    body: dict[str, Any] = {"channel": args.channel, "type": args.type,
                            "data": _data(args.data)}
    if args.idempotency_key:
        body["idempotency_key"] = args.idempotency_key
    try:
        async with aiohttp.ClientSession() as http, http.post(
                url + "/api/v1/publish", json=body, headers={"X-API-Token": token},
                timeout=aiohttp.ClientTimeout(total=30)) as response:
            answer = await response.json(content_type=None)
    except aiohttp.ClientConnectorError as exc:
        raise SystemExit(f"tidings: cannot connect to {url}: {reason(exc.os_error)}") from None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise SystemExit(f"tidings: cannot publish to {url}: {_http_reason(exc)}") from None
    error = answer.get("error") if isinstance(answer, dict) else None
    if response.status != 200 or not isinstance(answer, dict) or "offset" not in answer:
        if not isinstance(error, dict):
            raise SystemExit(f"tidings: {url} answered HTTP {response.status} without a "
                             "Tidings answer (is it a Tidings node?)")
        raise SystemExit(f"tidings: {response.status} {error.get('code', '?')}: "
                         f"{one_line(str(error.get('message', '')))}")
    repeat = " (a repeat: published earlier)" if answer["duplicate"] else ""
    print(f"{answer['channel']} offset {answer['offset']}{repeat}")
