"""Takeover dialogue latency (seed 002) on one node, through real HTTP and WebSockets.

    .venv/bin/python -m bench.editing_takeover [--rounds 200] [--database-url URL]

Two users hand one resource back and forth: each round, the waiting tab asks
(``takeover-request``), the editor's socket receives ``takeover_request``, the
editor approves, the asker's socket receives ``takeover_response``. Prints the
percentiles of request → push and approve → push, and rounds per second.
Without ``--database-url``, a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from tests.editing.client import Api, Tab
from tests.support.server import RunningServer


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


async def run(database_url: str, rounds: int) -> None:
    node = await RunningServer(database_url).start()
    try:
        async with aiohttp.ClientSession() as http:
            people = []
            for _ in range(2):
                user_id, token = await node.quick_user()
                people.append(Api(http, node.http_url, token, user_id))
            ws = await people[0].workspace("bench")
            await people[0].add_member(ws, people[1].user_id)
            tabs = [p.tab(ws, 1) for p in people]
            for tab in tabs:
                await tab.start()
                await tab.connect()
            to_editor: list[float] = []
            to_asker: list[float] = []
            holder, asker = tabs
            started = time.perf_counter()
            for _ in range(rounds):
                await _round(holder, asker, to_editor, to_asker)
                holder, asker = asker, holder
            elapsed = time.perf_counter() - started
    finally:
        await node.stop()
    print(f"{rounds} takeover dialogues on {database_url.split('://')[0]}: "
          f"{rounds / elapsed:.0f} dialogues/s")
    for name, values in (("request -> takeover_request push", to_editor),
                         ("approve -> takeover_response push", to_asker)):
        print(f"  {name}: p50 {_pct(values, 0.5):.1f} ms, p99 {_pct(values, 0.99):.1f} ms, "
              f"mean {statistics.mean(values) * 1000:.1f} ms")


async def _round(holder: Tab, asker: Tab, to_editor: list[float],
                 to_asker: list[float]) -> None:
    assert holder.socket is not None and asker.socket is not None
    t0 = time.perf_counter()
    reply = await asker.request()
    pushed = await holder.socket.next("takeover_request")
    to_editor.append(time.perf_counter() - t0)
    assert pushed["request"]["id"] == reply.body["request"]["id"]
    t1 = time.perf_counter()
    await holder.respond(pushed["request"]["id"], approved=True)
    answer = await asker.socket.next("takeover_response")
    to_asker.append(time.perf_counter() - t1)
    assert answer["approved"] is True
    await holder.socket.next("editing_ended")
    await asker.socket.next("editing_ended")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(url, args.rounds))


if __name__ == "__main__":
    main()
