"""``tidings webhooks list|replay``: the webhook outbox for operators (issue 21 item 2).

Both work on the store directly, like ``token list``; a running node sends replayed
rows within ``webhook_poll_interval`` (the admin API's replay wakes it at once).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from tidings.config import Settings

if TYPE_CHECKING:
    from tidings.store import Store

AddSettings = Callable[[argparse.ArgumentParser, Sequence[str]], None]
OpenStore = Callable[[str], AbstractAsyncContextManager["Store"]]


def add_webhook_commands(sub: Any, add_settings: AddSettings) -> None:
    """Add ``webhooks list`` and ``webhooks replay``."""
    webhooks = sub.add_parser("webhooks", help="the webhook outbox: list, replay").add_subparsers(
        dest="action", required=True)
    listing = webhooks.add_parser("list", help="webhooks, newest first")
    listing.add_argument("--state", choices=("pending", "delivered", "dead"),
                         help="only webhooks in this state")
    listing.add_argument("--limit", type=int, default=50, help="at most this many [50]")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--config", help="TOML file of settings")
    add_settings(listing, ["database_url"])
    replay = webhooks.add_parser("replay", help="send webhooks again (by id, or every dead "
                                                "one with --dead)")
    replay.add_argument("ids", nargs="*", type=int, metavar="ID")
    replay.add_argument("--dead", action="store_true", help="every dead webhook")
    replay.add_argument("--config", help="TOML file of settings")
    add_settings(replay, ["database_url"])


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


async def run_webhooks(settings: Settings, args: argparse.Namespace,
                       open_store: OpenStore) -> None:
    """``webhooks list`` or ``webhooks replay``."""
    from tidings.store import now_ms
    from tidings.store.outbox import Outbox

    if args.action == "replay" and bool(args.ids) == args.dead:
        raise SystemExit("tidings: give webhook ids, or --dead")
    if args.action == "list" and not 1 <= args.limit <= 10_000:
        raise SystemExit("tidings: --limit must be between 1 and 10000")
    async with open_store(settings.database_url) as store:
        if not isinstance(store, Outbox):
            raise SystemExit("tidings: this store keeps no webhook outbox (Redis)")
        await store.migrate()
        if args.action == "replay":
            count = await store.outbox_replay(None if args.dead else list(args.ids), now_ms())
            print(f"replayed: {count}")
            if not count:
                raise SystemExit(1)
            return
        rows = await store.outbox_list(args.state, args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json(), sort_keys=True))
        return
    print(f"{'ID':>8}  {'STATE':9} {'EVENT':20} {'TRIES':>5}  {'CREATED':21} LAST ERROR")
    for r in rows:
        print(f"{r.id:>8}  {r.state:9} {r.event[:20]:20} {r.attempts:>5}  "
              f"{_when(r.created_at):21} {r.last_error[:60] or '-'}")
