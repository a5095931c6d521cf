"""Scenario 2, connections: many idle (authenticated, subscribed) connections, server RSS.

The load generator spreads its connections over several 127.0.0.x source
addresses (one address has only ~28k ephemeral ports). RSS is the server's
resident memory after every connection is ready and a second has passed, minus
its RSS before the first one connected, divided by the count.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import tidings_node
from bench.harness import LoadGen, Server, free_port, load_average, rss_kib
from bench.peers import Peer

PER_USER = 20  # Tidings: connections per user (its per-user limit is raised to match)


async def _measure(server: Server, make_loadgen: Any, count: int) -> dict[str, Any]:
    await asyncio.sleep(1.0)  # let the server finish starting before the baseline
    pid = server.measured_pid
    before = rss_kib(pid)
    lg: LoadGen = make_loadgen()
    try:
        seconds, status = await asyncio.to_thread(lg.wait_ready, 90.0)
        await asyncio.sleep(1.0)
        after = rss_kib(pid)
        status = await asyncio.to_thread(lg.command, "status")
    finally:
        lg.stop()
    ready = status["ready"]
    return {
        "connections": count, "ready": ready, "failed": status["failed"],
        "closed": status["closed"], "connect_seconds": round(seconds, 2),
        "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
        "rss_kib_per_connection": round((after - before) / max(ready, 1), 2),
        "load_average": load_average(),
    }


async def peer_run(peer: Peer, count: int, workdir: Path, src_addrs: int) -> dict[str, Any]:
    """Idle subscribers on a peer server."""
    port = free_port()
    server = peer.start(port, workdir)
    spec = peer.subscriber
    init = None
    if spec.init_lines:
        init = workdir / f"{peer.name}-init.txt"
        init.write_text("\n".join(spec.init_lines) + "\n")
    try:
        return await _measure(server, lambda: LoadGen(
            port, conns=count, path=spec.path, init=init, ready_match=spec.ready_match,
            pong=spec.pong, src_addrs=src_addrs), count)
    finally:
        server.stop()


async def tidings_run(count: int, workdir: Path, src_addrs: int) -> dict[str, Any]:
    """Idle authenticated Tidings connections (``MsgAuth`` with a JWT, backlog replayed)."""
    url = f"sqlite:///{workdir}/connections-{time.time_ns()}.db"
    users = await tidings_node.create_users(url, (count + PER_USER - 1) // PER_USER)
    init = tidings_node.write_init(workdir / "connections-init.txt",
                                   [(u, 0) for u in users for _ in range(PER_USER)][:count])
    port = free_port()
    server = tidings_node.start(workdir, url, port, max_connections_per_user=PER_USER)
    try:
        return await _measure(server, lambda: LoadGen(
            port, conns=count, path="/ws", init=init, ready_match="success",
            keepalive_hex=tidings_node.ping_frame().hex(), src_addrs=src_addrs), count)
    finally:
        server.stop()
