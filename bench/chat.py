"""Scenario 3, durable chat: users chatting 1:1, each chat acknowledged after store.

Users are paired (2k <-> 2k+1), one connection each. Closed loop: every connection
keeps ``window`` chats in flight and sends the next one when a ``ChatAck`` (107) comes
back, so the figure is what the store path sustains, not what a client asked for; but
then the mean ack time is only what is in flight over the rate (Little's law). Open
loop (``rate``): that many chats a second in all, each user in turn, whatever the acks
do, and each ack timed from the moment its chat was due: the latency at a given rate.
The recipients' pushes are read by the same load generator; with ``acks`` it answers
each with a delivery ``MsgAck``, as a client written from seed 001 does (the node then
also stores every device's cursor and marks the messages delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import tidings_node
from bench.harness import SERVER_CORE, CpuMeter, LoadGen, free_port, load_average

WINDOW_CLOSED = 8
"""Chats in flight per user in the closed-loop run (1 600 for 200 users)."""
WINDOW_OPEN_CAP = 64
"""At most this many unacknowledged chats per user in an open-loop run."""


async def scenario(workdir: Path, stores: list[str], *, reps: int, quick: bool,
                   rates: list[float], acks: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Scenario 3 on each store: the closed-loop run, then open-loop runs at ``rates``
    in increasing order, until one that the server cannot keep up with (chats skipped).
    Results by ``store`` (closed loop) and ``store, open loop R/s``."""
    users, seconds = (20, 2.0) if quick else (200, 6.0)
    results: dict[str, list[dict[str, Any]]] = {}
    for store in stores:
        for rep in range(reps):
            for rate in [0.0, *sorted(rates)]:
                key = f"{store}, open loop {rate:g}/s" if rate else store
                print(f"chat {key} rep {rep + 1}/{reps}", file=sys.stderr, flush=True)
                window = WINDOW_OPEN_CAP if rate else (4 if quick else WINDOW_CLOSED)
                with contextlib.ExitStack() as stack:
                    url = stack.enter_context(postgres(workdir)) if store == "postgres" \
                        else f"sqlite:///{workdir}/chat-{time.time_ns()}.db"
                    r = await run(workdir, url, users=users, window=window, seconds=seconds,
                                  warmup=1.0 if quick else 2.0, rate=rate, acks=acks)
                r["rep"] = rep
                results.setdefault(key, []).append(r)
                if rate and r["skipped"]:
                    break
    return results


@contextlib.contextmanager
def postgres(workdir: Path) -> Iterator[str]:
    """A throwaway PostgreSQL on a free port, pinned to the server core; yields its URL."""
    from tests.support.services import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        # Backends fork from the postmaster and inherit its affinity.
        os.sched_setaffinity(server.pid, {int(SERVER_CORE)})
        yield server.url
    finally:
        server.close()


async def run(workdir: Path, database_url: str, *, users: int, window: int,
              seconds: float, warmup: float = 2.0, rate: float = 0.0,
              acks: bool = False) -> dict[str, Any]:
    """One repetition on one store; returns acked messages/s and ack latency.

    ``rate``: open loop at that many chats/s in all, ``window`` then being a cap per
    user (a chat due on a user with ``window`` unacknowledged is counted as skipped).
    """
    ids = await tidings_node.create_users(database_url, users)
    pairs = [(ids[i], ids[i ^ 1] if (i ^ 1) < len(ids) else ids[0]) for i in range(len(ids))]
    init = tidings_node.write_init(workdir / "chat-init.txt", pairs)
    port = free_port()
    server = tidings_node.start(workdir, database_url, port, rate_limit=1_000_000,
                                rate_burst=1_000_000)
    lg = LoadGen(port, conns=users, path="/ws", mode="chat", init=init, ready_match="success",
                 window=window, keepalive_hex=tidings_node.ping_frame().hex(), rate=rate,
                 acks=acks)
    try:
        connect_s, status = await asyncio.to_thread(lg.wait_ready, 60.0)
        if status["ready"] < users:
            raise RuntimeError(f"chat: {status} of {users} ready:\n{server.log_tail()}")
        await asyncio.to_thread(lg.command, "go")
        await asyncio.sleep(warmup)
        await asyncio.to_thread(lg.command, "reset")
        meter = CpuMeter(server.proc.pid, lg.proc.pid)
        await asyncio.sleep(seconds)
        rep = await asyncio.to_thread(lg.command, "report")
        cpu = meter.read()
        await asyncio.to_thread(lg.command, "stop")
        for _ in range(100):  # every chat in flight gets its ack
            if (await asyncio.to_thread(lg.command, "outstanding"))["outstanding"] == 0:
                break
            await asyncio.sleep(0.1)
        left = (await asyncio.to_thread(lg.command, "outstanding"))["outstanding"]
    finally:
        lg.stop()
        server.stop()
    return {
        "users": users, "window": window, "rate": rate, "sent": rep["chats_sent"],
        "skipped": rep["skipped"],
        "seconds": round(rep["seconds"], 3),
        "acked": rep["acks"], "acked_per_s": round(rep["acks"] / rep["seconds"]),
        "pushes_per_s": round(rep["pushes_in"] / rep["seconds"]),
        "delivery_acks_per_s": round(rep["acks_sent"] / rep["seconds"]),
        "ack_p50_ms": rep["p50_ms"], "ack_p99_ms": rep["p99_ms"], "ack_p999_ms": rep["p999_ms"],
        "errors": rep["errors_in"], "closed": rep["closed"], "unacked_at_end": left,
        **cpu, "connect_seconds": round(connect_s, 3),
        "load_average": load_average(),
    }
