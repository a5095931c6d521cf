"""Scenario 3, durable chat: users chatting 1:1, each chat acknowledged after store.

Users are paired (2k <-> 2k+1), one connection each; every connection keeps
``window`` chats in flight and sends the next one when a ``ChatAck`` (107) comes
back, so the figure is what the store path sustains, not what a client asked
for. The recipients' pushes are read by the same load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import tidings_node
from bench.harness import SERVER_CORE, CpuMeter, LoadGen, free_port, load_average


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
              seconds: float, warmup: float = 2.0) -> dict[str, Any]:
    """One repetition on one store; returns acked messages/s and ack latency."""
    ids = await tidings_node.create_users(database_url, users)
    pairs = [(ids[i], ids[i ^ 1] if (i ^ 1) < len(ids) else ids[0]) for i in range(len(ids))]
    init = tidings_node.write_init(workdir / "chat-init.txt", pairs)
    port = free_port()
    server = tidings_node.start(workdir, database_url, port, rate_limit=1_000_000,
                                rate_burst=1_000_000)
    lg = LoadGen(port, conns=users, path="/ws", mode="chat", init=init, ready_match="success",
                 window=window, keepalive_hex=tidings_node.ping_frame().hex())
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
        "users": users, "window": window, "seconds": round(rep["seconds"], 3),
        "acked": rep["acks"], "acked_per_s": round(rep["acks"] / rep["seconds"]),
        "pushes_per_s": round(rep["pushes_in"] / rep["seconds"]),
        "ack_p50_ms": rep["p50_ms"], "ack_p99_ms": rep["p99_ms"], "ack_p999_ms": rep["p999_ms"],
        "errors": rep["errors_in"], "closed": rep["closed"], "unacked_at_end": left,
        **cpu, "connect_seconds": round(connect_s, 3),
        "load_average": load_average(),
    }
