"""Desk map throughput and event latency, measured on this machine.

    .venv/bin/python -m bench.desks [--database-url URL] [--cycles 400] [--concurrency 20]

Starts a node on 127.0.0.1 (a fresh SQLite file unless --database-url names an empty
PostgreSQL database), loads a 3-floor demo building, then:

1. occupy+release cycles from ``--concurrency`` users on distinct desks: requests/s and
   latency percentiles of the REST calls;
2. for each cycle of a Socket.IO client in that desk's floor room, the time from sending
   the REST request to receiving the ``workstation_update`` event.

Prints one JSON document. Bounded in count; stops the node it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from tidings.apps.desks.demo import load_demo
from tidings.config import Settings
from tidings.server import Server


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "mean_ms": round(1000 * statistics.fmean(ordered), 2)}


async def main(url: str, cycles: int, concurrency: int) -> dict[str, Any]:
    node = Server(Settings(port=0, database_url=url, log_level="warning",
                           http_rate_limit=0))
    await node.start()
    try:
        await load_demo(node.desks.db, floors=3, desks_per_floor=100)
        await asyncio.sleep(1.0)  # let the demo's change events drain (PostgreSQL)
        tokens = []
        for i in range(concurrency):
            user = await node.store.create_user(f"bench{i}", "!")
            tokens.append((await node.service.auth.issue(user.id))[0])
        latencies: list[float] = []
        base = node.url
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def worker(i: int, rounds: int) -> None:
                headers = {"Authorization": f"Bearer {tokens[i]}"}
                desk = i + 1
                for _ in range(rounds):
                    for action in ("occupy", "release"):
                        start = time.perf_counter()
                        async with http.post(f"{base}/api/workstations/{desk}/{action}",
                                             headers=headers) as r:
                            assert r.status == 200, await r.text()
                        latencies.append(time.perf_counter() - start)

            started = time.perf_counter()
            await asyncio.gather(*(worker(i, cycles // concurrency) for i in range(concurrency)))
            elapsed = time.perf_counter() - started
            # Events are delivered after the answers: how long until all went out.
            while node.desks.pending:  # noqa: ASYNC110 - polling a counter is the point
                await asyncio.sleep(0.01)
            drained = time.perf_counter() - started

            client = socketio.AsyncClient(reconnection=False)
            got: asyncio.Queue[float] = asyncio.Queue()
            client.on("workstation_update", lambda _m: got.put_nowait(time.perf_counter()))
            await client.connect(base, auth={"token": tokens[0], "floor": 1},
                                 transports=["websocket"])
            await asyncio.sleep(0.5)
            event_latency: list[float] = []
            headers = {"Authorization": f"Bearer {tokens[0]}"}
            for n in range(100):
                action = "occupy" if n % 2 == 0 else "release"
                sent = time.perf_counter()
                async with http.post(f"{base}/api/workstations/1/{action}",
                                     headers=headers) as r:
                    assert r.status == 200
                event_latency.append(await asyncio.wait_for(got.get(), 10) - sent)
            await client.disconnect()
        return {"store": url.split("://")[0], "requests": len(latencies),
                "concurrency": concurrency,
                "requests_per_second": round(len(latencies) / elapsed, 1),
                "rest_latency": _percentiles(latencies),
                "all_events_delivered_after_s": round(drained, 3),
                "writes_seconds": round(elapsed, 3),
                "rest_to_socketio_event": _percentiles(event_latency)}
    finally:
        await node.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--cycles", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        database = args.database_url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        print(json.dumps(asyncio.run(main(database, args.cycles, args.concurrency)), indent=2))
