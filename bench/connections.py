"""Scenario 2, connections: many idle (authenticated, subscribed) connections, server RSS.

The load generator spreads its connections over several 127.0.0.x source
addresses (one address has only ~28k ephemeral ports). RSS is the server's
resident memory after every connection is ready and a second has passed, minus
its RSS before the first one connected, divided by the count. The server's CPU time
from the first connect until all are ready, divided by the count, is its CPU per
connect (for a CPU-bound server, what bounds the seconds to connect them all).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import tidings_node
from bench.harness import LoadGen, Server, cpu_ticks, free_port, load_average, rss_kib
from bench.peers import Peer

PER_USER = 20  # Tidings: connections per user (its per-user limit is raised to match)


async def _measure(server: Server, make_loadgen: Any, count: int) -> dict[str, Any]:
    await asyncio.sleep(1.0)  # let the server finish starting before the baseline
    pid = server.measured_pid
    before = rss_kib(pid)
    cpu_before = cpu_ticks(pid)
    lg: LoadGen = make_loadgen()
    try:
        seconds, status = await asyncio.to_thread(lg.wait_ready, 90.0)
        cpu = cpu_ticks(pid) - cpu_before
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
        "connect_cpu_us": round(cpu / max(ready, 1) * 1e6),
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


async def tidings_workers_run(count: int, workdir: Path, *, workers: int = 3,
                              loadgens: int = 3, src_addrs: int = 8,
                              publications: int = 5) -> dict[str, Any]:
    """``serve --workers N`` (PostgreSQL store, Redis bus) holding ``count`` idle authenticated and
    subscribed ``/ws`` connections, then fan-out of ``publications`` to all of them.

    The connections come from ``loadgens`` C load generators (one process holds at most
    the hard descriptor limit: 20 000 here), each over ``src_addrs`` 127.0.0.x source
    addresses; the node's caps (``max_connections``, ``max_connections_per_ip``) are
    set to what the run needs. RSS is the workers' together (after - before) per
    connection. Each publication is timed from its send to its arrival on every socket.
    """
    import aiohttp
    from tests.support.services import PostgresServer, RedisServer

    from bench.harness import CpuMeter, children
    from bench.peers import TidingsPublisher

    per_worker = count // workers + 1000  # SO_REUSEPORT spreads them, not exactly evenly
    # PostgreSQL: several processes writing one SQLite file wait on its lock (each
    # MsgAuth writes), which connected only ~130 sockets/s here.
    postgres = PostgresServer()
    postgres.start()
    url = postgres.create_database("workers")
    users = await tidings_node.create_users(url, (count + PER_USER - 1) // PER_USER + 1)
    publisher_user, users = users[-1], users[:-1]
    sub = tidings_node.subscribe_frame("all").hex()
    run = time.time_ns()
    lines = [f"b:{tidings_node.auth_frame(u, f'w{run}-{u}-{i}').hex()} b:{sub}"
             for u in users for i in range(PER_USER)][:count]
    shares = [len(lines[i::loadgens]) for i in range(loadgens)]
    redis = RedisServer()
    redis.start()
    port = free_port()
    server = tidings_node.start(
        workdir, url, port, workers=workers, bus_url=redis.url,
        max_connections_per_user=PER_USER, max_connections=per_worker,
        max_connections_per_ip=count // src_addrs + 1000, rate_limit=100_000,
        rate_burst=100_000,
        # Connecting 50 000 takes minutes on a loaded machine: sockets waiting for their
        # MsgAuth's turn are not reaped, and idle ones ping every 300 s, not every 20.
        auth_timeout=120, idle_timeout=900)
    gens: list[LoadGen] = []
    try:
        deadline = time.monotonic() + 60
        while len(children(server.proc.pid)) < workers and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # every worker listening and settled before the baseline
        pids = children(server.proc.pid)
        before = sum(rss_kib(p) for p in pids)
        started = time.monotonic()
        for i, share in enumerate(shares):
            init = workdir / f"workers-init-{i}.txt"
            init.write_text("\n".join(lines[i::loadgens]) + "\n")
            gens.append(LoadGen(port, conns=share, path="/ws", init=init,
                                ready_match="recovered", src_addrs=src_addrs,
                                keepalive_hex=tidings_node.ping_frame().hex(),
                                keepalive_every=300.0, ready_parallel=512))
        statuses = await asyncio.gather(*(asyncio.to_thread(g.wait_ready, 900.0)
                                          for g in gens))
        connect_s = time.monotonic() - started
        await asyncio.sleep(2.0)
        after = sum(rss_kib(p) for p in pids)
        status = [await asyncio.to_thread(g.command, "status") for g in gens]
        ready = sum(s["ready"] for s in status)
        fan: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws")
            await ws.send_bytes(tidings_node.auth_frame(publisher_user, "pub"))
            publisher = TidingsPublisher(ws, "all")
            await asyncio.sleep(0.5)
            for _ in range(publications):
                for g in gens:
                    await asyncio.to_thread(g.command, "reset")
                meter = CpuMeter(pids, gens[0].proc.pid)
                await publisher.send()
                reach = time.monotonic() + 30
                while time.monotonic() < reach:
                    got = 0
                    for g in gens:
                        got += (await asyncio.to_thread(g.command, "count"))["deliveries"]
                    if got >= ready:
                        break
                    await asyncio.sleep(0.05)
                cpu = meter.read()
                reports = [await asyncio.to_thread(g.command, "report") for g in gens]
                fan.append({"delivered": sum(r["deliveries"] for r in reports),
                            "p50_ms": max(r["p50_ms"] for r in reports),
                            "p99_ms": max(r["p99_ms"] for r in reports),
                            "max_ms": max(r["max_ms"] for r in reports),
                            "server_cpu_pct": cpu["server_cpu_pct"]})
                await asyncio.sleep(1.0)
            await ws.close()
        return {
            "connections": count, "workers": workers, "loadgens": loadgens,
            "src_addrs": src_addrs, "ready": ready,
            "failed": sum(s["failed"] for s in status),
            "closed": sum(s["closed"] for s in status),
            "connect_seconds": round(max(s for s, _ in statuses), 2),
            "connect_wall_seconds": round(connect_s, 2),
            "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
            "rss_kib_per_connection": round((after - before) / max(ready, 1), 2),
            "worker_rss_mib": [round(rss_kib(p) / 1024, 1) for p in pids],
            "fanout": fan,
            "fanout_all_ms": [f["max_ms"] for f in fan],
            "deliveries_per_s": [round(f["delivered"] / (f["max_ms"] / 1000))
                                 if f["max_ms"] else 0 for f in fan],
            "load_average": load_average(),
        }
    finally:
        for g in gens:
            g.stop()
        server.stop()
        redis.close()
        postgres.close()


def workers_table(results: list[dict[str, Any]]) -> list[str]:
    """Markdown rows for ``serve --workers`` holding many connections (median [min-max])."""
    from bench.report import fmt, spread

    failed = [r for r in results if "error" in r]
    results = [r for r in results if "error" not in r]
    rows = ["| connections (workers, load generators) | ready | RSS KiB per connection "
            "| workers' RSS before -> after MiB | seconds to connect all "
            "| one publication to all: last delivery ms | p50 / p99 ms | deliveries/s "
            "| load average |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        fan = r["fanout"]
        rows.append(
            f"| {r['connections']} ({r['workers']}, {r['loadgens']}) | {r['ready']} "
            f"| **{r['rss_kib_per_connection']}** | {r['rss_before_mib']} -> "
            f"{r['rss_after_mib']} | {r['connect_seconds']} "
            f"| {fmt(spread([f['max_ms'] for f in fan]), digits=0)} "
            f"| {fmt(spread([f['p50_ms'] for f in fan]), digits=0)} / "
            f"{fmt(spread([f['p99_ms'] for f in fan]), digits=0)} "
            f"| {fmt(spread(r['deliveries_per_s']), digits=0)} | {r['load_average'][0]} |")
    if failed:
        rows += ["", f"{len(failed)} repetition(s) did not finish: "
                 + "; ".join(r["error"][-200:] for r in failed)]
    return rows
