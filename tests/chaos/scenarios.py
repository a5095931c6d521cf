"""Fault scenarios run with the delivery ledger: the bounded ones in ``make test``
(``test_chaos.py``) and the long ones in ``make chaos`` (``soak.py``) are the same
code with other sizes.

Each returns a :class:`Result`: the ledger's figures (it raises if the promise
broke) and what the fault cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.ledger import Figures, Ledger
from tests.chaos.node import NodeProcess
from tests.chaos.storm import Swarm, cpu_seconds
from tests.chaos.traffic import Traffic, create_accounts
from tests.support.services import PostgresServer, RedisServer
from tidings.client import ReconnectPolicy


@dataclass
class Result:
    """A scenario's outcome."""

    name: str
    figures: Figures
    seconds: float
    faults: int
    notes: dict[str, Any] = field(default_factory=dict)


async def node_crashes(database_url: str, *, users: int = 6, devices: int = 2,
                       crashes: int = 2, interval: float = 1.5, graceful: bool = False,
                       name: str = "node kill -9") -> Result:
    """Chat through a node that is SIGKILLed ``crashes`` times under load and restarted
    (``graceful``: stopped with SIGTERM instead, which must drain)."""
    started = time.monotonic()
    node = NodeProcess(database_url)
    ledger = Ledger()
    traffic: Traffic | None = None
    try:
        accounts = await create_accounts(database_url, users)
        await asyncio.to_thread(node.start)
        traffic = Traffic(node.ws_url, ledger)
        await traffic.connect(accounts, devices)
        traffic.start_sending([a.user_id for a in accounts])
        downtime = []
        for n in range(crashes):
            await asyncio.sleep(interval)
            await asyncio.to_thread(node.terminate if graceful else node.kill)
            if graceful and node.exit_code != 0:
                raise AssertionError(f"exit code {node.exit_code} after SIGTERM")
            down = time.monotonic()
            await asyncio.sleep(0.3)
            await asyncio.to_thread(node.start)
            downtime.append(time.monotonic() - down)
            # The next fault must hit every device: wait until all have reconnected.
            await _until(lambda n=n: min(ledger.connections().values()) >= n + 2, 60.0)
        await asyncio.sleep(interval)
        figures, settle = await _finish(traffic, ledger)
        return Result(name, figures, time.monotonic() - started, crashes,
                      {"max_downtime_s": round(max(downtime), 2),
                       "settle_s": round(settle, 2), **_log_notes(node)})
    finally:
        if traffic is not None:
            await traffic.close()
        await asyncio.to_thread(node.close)


async def postgres_restarts(*, users: int = 6, devices: int = 2, restarts: int = 2,
                            interval: float = 1.5, pg_down: float = 0.5) -> Result:
    """Chat through a node whose PostgreSQL (a private one) restarts under load."""
    started = time.monotonic()
    pg = PostgresServer()
    await asyncio.to_thread(pg.start)
    node = NodeProcess(pg.url)
    ledger = Ledger()
    traffic: Traffic | None = None
    try:
        accounts = await create_accounts(pg.url, users)
        await asyncio.to_thread(node.start)
        traffic = Traffic(node.ws_url, ledger)
        await traffic.connect(accounts, devices)
        traffic.start_sending([a.user_id for a in accounts])
        for _ in range(restarts):
            await asyncio.sleep(interval)
            await asyncio.to_thread(pg.stop)
            await asyncio.sleep(pg_down)
            await asyncio.to_thread(pg.start)
        await asyncio.sleep(interval)
        figures, settle = await _finish(traffic, ledger)
        return Result("PostgreSQL restart", figures, time.monotonic() - started, restarts,
                      {"settle_s": round(settle, 2), **_log_notes(node)})
    finally:
        if traffic is not None:
            await traffic.close()
        await asyncio.to_thread(node.close)
        await asyncio.to_thread(pg.close)


async def reconnect_storm(database_url: str, *, clients: int = 500, chats_each: int = 2,
                          workers: int | None = None) -> Result:
    """``clients`` devices connected to one node, which is SIGKILLed and restarted: all of
    them reconnect at once (the SDK's backoff with jitter, from 0.5 s). Each sends
    ``chats_each`` chats before the crash and as many after. The devices run in
    ``workers`` processes (:class:`~tests.chaos.storm.Swarm`; default one per 2 500)."""
    started = time.monotonic()
    node = NodeProcess(database_url, log_level="warning")
    policy = ReconnectPolicy(initial_interval=0.5, max_interval=5.0, jitter=0.5)
    swarm: Swarm | None = None
    try:
        accounts = await create_accounts(database_url, clients)
        await asyncio.to_thread(node.start)
        swarm = Swarm(node.ws_url, accounts, policy=policy, workers=workers)
        await swarm.start()
        # Bounded, and generous: a loaded 2-core machine connects a few hundred a second.
        bound = 60.0 + clients * 0.02
        connect_s = await swarm.connect(bound)
        await swarm.start_sending(chats_each)
        await swarm.finish_sending(bound)
        await swarm.settle(30.0)
        await asyncio.to_thread(node.kill)
        clients_cpu = cpu_seconds(swarm.pids)
        restarted = time.monotonic()
        await asyncio.to_thread(node.start)
        node_up = time.monotonic() - restarted  # the node answers its health check
        await swarm.start_sending(chats_each)
        try:
            async with asyncio.timeout(bound):
                while (await swarm.resynced(restarted))[0] < clients:
                    await asyncio.sleep(0.25)
        except TimeoutError:
            done, _ = await swarm.resynced(restarted)
            raise TimeoutError(f"{done} of {clients} clients resynced within {bound:.0f} s "
                               "of the restart") from None
        # Where the storm's time goes: CPU of the node (from its start) and of the SDK
        # clients from the restart until every client has resynced.
        node_cpu, clients_cpu = cpu_seconds([node.pid]), cpu_seconds(swarm.pids) - clients_cpu
        _, last_synced = await swarm.resynced(restarted)
        _, last_reconnected = await swarm.reconnected(restarted)
        await swarm.finish_sending(bound)
        settle = await swarm.settle(60.0)
        figures = (await swarm.collect()).check()
        assert last_synced is not None and last_reconnected is not None
        return Result(f"reconnect storm ({clients} clients)", figures,
                      time.monotonic() - started, 1,
                      {"clients": clients, "workers": swarm.count,
                       "first_connect_s": round(connect_s, 2), "node_up_s": round(node_up, 2),
                       "all_reconnected_s": round(last_reconnected - restarted, 2),
                       "all_resynced_s": round(last_synced - restarted, 2),
                       "node_cpu_s": round(node_cpu, 2), "clients_cpu_s": round(clients_cpu, 2),
                       "settle_s": round(settle, 2), **_log_notes(node)})
    finally:
        if swarm is not None:
            await swarm.close()
        await asyncio.to_thread(node.close)


async def cluster_faults(fault: str, *, nodes: int = 3, users: int = 8, devices: int = 2,
                         faults: int = 2, interval: float = 2.0,
                         redis_down: float = 0.5) -> Result:
    """A cluster of ``nodes`` on one PostgreSQL and a Redis bus, each user's devices on
    different nodes, under ``fault``: ``"redis"`` kills Redis (SIGKILL) under load and
    starts it again ``redis_down`` seconds later, empty (it is not persistent: the
    registry's leases and connection entries are gone too); ``"node"`` SIGKILLs one
    node, waits until its devices have reconnected to the others, and restarts it.

    The notes say what the fault did: ``moved_devices`` (devices that were served by
    more than one node), ``bus_resubscribed`` (times a node's bus subscribed again
    after losing Redis, each followed by a gap fill from the store),
    ``auth_refused_too_many`` (reconnects refused with ``WS_TOO_MANY_CONNECTIONS``; a
    reconnecting device replaces its own entry, even one of a SIGKILLed node whose lease
    has not expired, so this should stay at 0).
    """
    if fault not in ("redis", "node"):
        raise ValueError(f"unknown fault {fault!r}")
    started = time.monotonic()
    pg, redis = PostgresServer(), RedisServer()
    await asyncio.to_thread(pg.start)
    await asyncio.to_thread(redis.start)
    # Each device sends a chat as soon as the last one is acknowledged (up to ~40 a
    # second here) and acknowledges every push: more frames than the default 50 a second
    # per connection, and the limiter's refusals are not the fault under test.
    procs = [NodeProcess(pg.url, bus_url=redis.url, rate_limit=1000, rate_burst=1000)
             for _ in range(nodes)]
    ledger = Ledger()
    traffic: Traffic | None = None
    try:
        accounts = await create_accounts(pg.url, users)
        for proc in procs:
            await asyncio.to_thread(proc.start)
        traffic = Traffic(procs[0].ws_url, ledger, nodes=[p.ws_url for p in procs])
        await traffic.connect(accounts, devices)
        for a in accounts:  # the fan-out to a user's devices crosses nodes
            first = {traffic.nodes_of(f"u{a.user_id}d{n}")[0] for n in range(devices)}
            assert len(first) == min(devices, nodes), (a.user_id, first)
        traffic.start_sending([a.user_id for a in accounts])
        downtime = []
        for n in range(faults):
            await asyncio.sleep(interval)
            down = time.monotonic()
            if fault == "redis":
                await asyncio.to_thread(redis.kill)
                await asyncio.sleep(redis_down)
                await asyncio.to_thread(redis.start)
            else:
                victim = procs[n % nodes]
                held = {d for d in traffic.clients
                        if traffic.nodes_of(d)[-1] == victim.ws_url}
                await asyncio.to_thread(victim.kill)
                # Its devices move to the other nodes (a failed connect moves a device on).
                await _until(lambda held=held, url=victim.ws_url: all(
                    traffic.nodes_of(d)[-1] != url for d in held), 60.0)
                await asyncio.sleep(interval / 2)
                await asyncio.to_thread(victim.start)
            downtime.append(time.monotonic() - down)
        await asyncio.sleep(interval)
        figures, settle = await _finish(traffic, ledger)
        logs = [p.log_text() for p in procs]
        errors = [line for text in logs for line in text.splitlines() if " ERROR " in line]
        name = (f"Redis killed and restarted, {nodes}-node cluster" if fault == "redis"
                else f"a node killed in a {nodes}-node cluster")
        moved = sum(len(set(traffic.nodes_of(d))) > 1 for d in traffic.clients)
        return Result(name, figures, time.monotonic() - started, faults,
                      {"nodes": nodes, "moved_devices": moved,
                       "bus_resubscribed": sum(t.count("redis bus: receiving again")
                                               for t in logs),
                       "auth_refused_too_many": sum(
                           t.count("auth refused: WS_TOO_MANY_CONNECTIONS") for t in logs),
                       "max_downtime_s": round(max(downtime), 2),
                       "settle_s": round(settle, 2), "node_error_lines": len(errors),
                       "node_errors_sample": errors[:3]})
    finally:
        if traffic is not None:
            await traffic.close()
        for proc in procs:
            await asyncio.to_thread(proc.close)
        await asyncio.to_thread(redis.close)
        await asyncio.to_thread(pg.close)


def _log_notes(node: NodeProcess) -> dict[str, Any]:
    """How many ERROR records the node logged, and the first few (for the report)."""
    errors = [line for line in node.log_text().splitlines() if " ERROR " in line]
    return {"node_error_lines": len(errors), "node_errors_sample": errors[:3]}


async def _finish(traffic: Traffic, ledger: Ledger) -> tuple[Figures, float]:
    await traffic.finish_sending()
    settle = await traffic.settle()
    return ledger.check(), settle


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.1)
