"""Scenario 4, the reconnect storm: N SDK clients on one node (SQLite), which is
SIGKILLed and restarted; all reconnect at once with the SDK's backoff. Reported: the
time from the restart until every client is re-authenticated and has its backlog
replayed (resynced), and the delivery ledger's figures (loss must be 0).

The clients are :class:`tidings.client.Client` s with the ledger's recording
transport, spread over worker processes (``tests/chaos/storm.py``); the run itself is
:func:`tests.chaos.scenarios.reconnect_storm`, as in ``make chaos``.

Also here: :func:`auth_rate`, how many ``MsgAuth`` a node answers per second when N
already-open sockets send theirs at once (the connect path without the clients' own
backoff): the figure the auth path's speed-ups were measured with.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from tests.chaos import scenarios
from tests.chaos.traffic import create_accounts

from bench import tidings_node
from bench.harness import free_port, load_average
from tidings.protocol.codec import decode_server_frame, encode_client_frame
from tidings.protocol.codes import MsgType
from tidings.protocol.messages import AuthPayload
from tidings.store import open_store
from tidings.store.base import NewMessage


async def run(workdir: Path, clients: int, *, workers: int | None = None) -> dict[str, Any]:
    """One storm on a fresh SQLite database; the figures as a dict."""
    url = f"sqlite:///{workdir}/storm-{time.time_ns()}.db"
    load_before = load_average()
    result = await scenarios.reconnect_storm(url, clients=clients, workers=workers)
    fig = result.figures
    notes = result.notes
    return {"clients": clients, "workers": notes["workers"],
            "resynced_s": notes["all_resynced_s"], "reconnected_s": notes["all_reconnected_s"],
            "node_up_s": notes["node_up_s"], "first_connect_s": notes["first_connect_s"],
            "settle_s": notes["settle_s"], "total_s": round(result.seconds, 1),
            "node_cpu_s": notes["node_cpu_s"], "clients_cpu_s": notes["clients_cpu_s"],
            "node_error_lines": notes["node_error_lines"], **fig.as_dict(),
            "load_average_before": load_before, "load_average_after": load_average()}


async def _accounts_with_backlog(workdir: Path, name: str, clients: int,
                                 backlog: int) -> tuple[str, list[Any]]:
    """A fresh SQLite store of ``clients`` users, each with ``backlog`` messages waiting."""
    url = f"sqlite:///{workdir}/{name}-{time.time_ns()}.db"
    accounts = await create_accounts(url, clients)
    store = open_store(url)
    rng = random.Random(1)
    try:
        await store.append_messages([
            NewMessage(a.user_id, "bench", rng.choice(accounts).user_id, "text", "hello", 0)
            for a in accounts for _ in range(backlog)])
    finally:
        await store.close()
    return url, accounts


async def auth_rate(workdir: Path, clients: int, *, backlog: int = 2) -> dict[str, Any]:
    """Open ``clients`` sockets, then send every ``MsgAuth`` at once (opaque tokens, each
    user with ``backlog`` messages waiting); auths/s until each has its last backlog page."""
    url, accounts = await _accounts_with_backlog(workdir, "auth", clients, backlog)
    port = free_port()
    server = tidings_node.start(workdir, url, port)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        gate = asyncio.Semaphore(100)

        async def open_one() -> aiohttp.ClientWebSocketResponse:
            async with gate:
                return await session.ws_connect(f"ws://127.0.0.1:{port}/ws")

        sockets = await asyncio.gather(*(open_one() for _ in accounts))

        async def auth(ws: aiohttp.ClientWebSocketResponse, token: str, n: int) -> None:
            await ws.send_bytes(encode_client_frame(
                MsgType.AUTH, 1, AuthPayload(token=token, device_id=f"d{n}"), binary=True))
            while True:
                type_, seq, body = decode_server_frame((await ws.receive()).data)
                if type_ == MsgType.SYNC_RSP and seq == 0 and not body.get("has_more"):
                    return

        started = time.monotonic()
        async with asyncio.timeout(300):
            await asyncio.gather(*(auth(ws, a.token, n)
                                   for n, (ws, a) in enumerate(zip(sockets, accounts,
                                                                   strict=True))))
        seconds = time.monotonic() - started
        await asyncio.gather(*(ws.close() for ws in sockets))
        return {"clients": clients, "seconds": round(seconds, 2),
                "auths_per_s": round(clients / seconds), "load_average": load_average()}
    finally:
        await session.close()
        server.stop()


def table(results: list[dict[str, Any]], rates: list[dict[str, Any]]) -> list[str]:
    """Markdown rows for scenario 4 (figures: median [min-max] of the repetitions)."""
    from bench.report import fmt, spread

    failed = [r for r in results if "error" in r]
    results = [r for r in results if "error" not in r]
    rates = [r for r in rates if "error" not in r]

    def fig(key: str) -> str:
        return fmt(spread([r[key] for r in results]), " s", digits=1)

    total = {k: sum(r[k] for r in results) for k in ("sent", "acked", "expected_deliveries",
                                                      "delivered", "redelivered", "lost",
                                                      "duplicated", "out_of_order", "phantom")}
    rows = ["| clients (workers) | all re-authenticated and resynced after the restart "
            "| all re-authenticated | node up | first connect | chats acked / sent "
            "| deliveries expected / made (redelivered) | lost / duplicated / out of order "
            "/ never sent | CPU-seconds until resynced: node / SDK clients "
            "| load average before → after |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    if results:
        loads = ", ".join(f"{r['load_average_before'][0]:.1f} → {r['load_average_after'][0]:.1f}"
                          for r in results)
        rows.append("| " + " | ".join([
            f"{results[0]['clients']} ({results[0]['workers']})",
            f"**{fig('resynced_s')}**", fig("reconnected_s"), fig("node_up_s"),
            fig("first_connect_s"), f"{total['acked']} / {total['sent']}",
            f"{total['expected_deliveries']} / {total['delivered']} ({total['redelivered']})",
            f"**{total['lost']} / {total['duplicated']} / {total['out_of_order']} / "
            f"{total['phantom']}**",
            f"{fmt(spread([r['node_cpu_s'] for r in results]), digits=1)} / "
            f"{fmt(spread([r['clients_cpu_s'] for r in results]), digits=1)}", loads]) + " |")
    if failed:
        rows += ["", f"{len(failed)} repetition(s) did not finish: "
                 + "; ".join(r["error"][-200:] for r in failed)]
    if rates:
        rows += ["", f"Auth rate ({rates[0]['clients']} open sockets send `MsgAuth` at once, "
                 "2 backlog messages each): "
                 + fmt(spread([r["auths_per_s"] for r in rates]), " auths/s") + "."]
    return rows


async def c_run(workdir: Path, clients: int, *, backlog: int = 2) -> dict[str, Any]:
    """The storm with the C load generator as the clients (it is never the bottleneck).

    ``clients`` sockets (each its own user, opaque token, ``backlog`` messages waiting,
    as :func:`auth_rate`) authenticate on one node (SQLite) and get their backlog; the
    node is SIGKILLed and restarted; every socket reopens with the SDK storm's backoff
    (0.5 s, times 1.5 per attempt up to 5 s, jitter 0.5) and sends ``MsgAuth`` again. Resynced: the
    backlog's last page (``SyncRsp`` with ``has_more`` false) has arrived. Timed from
    the restart, as the SDK storm is; CPU-seconds of the new node (from its start) and
    of the load generator over the same span. No delivery ledger here: the SDK storm
    keeps that.
    """
    from bench.harness import LoadGen, cpu_ticks

    url, accounts = await _accounts_with_backlog(workdir, "cstorm", clients, backlog)
    init = workdir / "cstorm-init.txt"
    with init.open("w") as f:
        for n, a in enumerate(accounts):
            frame = encode_client_frame(MsgType.AUTH, 1,
                                        AuthPayload(token=a.token, device_id=f"c{n}"), binary=True)
            assert isinstance(frame, bytes)
            f.write(f"b:{frame.hex()}\n")
    last_page = (b"\xa8has_more\xc2").hex()  # "has_more": false, in MessagePack
    port = free_port()
    server = tidings_node.start(workdir, url, port)
    lg = LoadGen(port, conns=clients, path="/ws", init=init, ready_hex=last_page,
                 src_addrs=4, reconnect=(0.5, 5.0), connect_parallel=1024)
    load_before = load_average()
    try:
        first = await _all_ready(lg, clients, 60.0 + clients * 0.02)
        lg_cpu = (await asyncio.to_thread(lg.command, "status"))["cpu_s"]
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        restarted = time.monotonic()
        server = await asyncio.to_thread(tidings_node.start, workdir, url, port)
        node_up = time.monotonic() - restarted
        resynced = await _all_ready(lg, clients, 60.0 + clients * 0.02, since=restarted)
        status = await asyncio.to_thread(lg.command, "status")
        return {"clients": clients, "first_connect_s": round(first, 2),
                "node_up_s": round(node_up, 2), "resynced_s": round(resynced, 2),
                "node_cpu_s": round(cpu_ticks(server.proc.pid), 2),
                "loadgen_cpu_s": round(status["cpu_s"] - lg_cpu, 2),
                "reopened": status["reopened"], "load_average_before": load_before,
                "load_average_after": load_average()}
    finally:
        lg.stop()
        server.stop()


async def _all_ready(lg: Any, clients: int, bound: float, since: float | None = None) -> float:
    """Seconds (from ``since``, or from now) until every socket is ready; raise if not
    within ``bound``."""
    start = since if since is not None else time.monotonic()
    while True:
        status = await asyncio.to_thread(lg.command, "status")
        if status["ready"] >= clients:
            return time.monotonic() - start
        if time.monotonic() - start > bound:
            raise TimeoutError(f"{status['ready']} of {clients} resynced within {bound:.0f} s")
        await asyncio.sleep(0.05)


def c_table(results: list[dict[str, Any]]) -> list[str]:
    """Markdown rows for the storm with C clients (median [min-max] of the repetitions)."""
    from bench.report import fmt, spread

    failed = [r for r in results if "error" in r]
    results = [r for r in results if "error" not in r]
    rows = ["| clients | all re-authenticated and resynced after the restart | node up "
            "| first connect | CPU-seconds until resynced: node / load generator "
            "| reconnection attempts | load average before → after |",
            "|---|---|---|---|---|---|---|"]
    if results:
        def fig(key: str, unit: str = " s") -> str:
            return fmt(spread([r[key] for r in results]), unit, digits=1)

        loads = ", ".join(f"{r['load_average_before'][0]:.1f} → {r['load_average_after'][0]:.1f}"
                          for r in results)
        rows.append(f"| {results[0]['clients']} | **{fig('resynced_s')}** | {fig('node_up_s')} "
                    f"| {fig('first_connect_s')} | {fig('node_cpu_s', '')} / "
                    f"{fig('loadgen_cpu_s', '')} | {fig('reopened', '')} | {loads} |")
    if failed:
        rows += ["", f"{len(failed)} repetition(s) did not finish: "
                 + "; ".join(r["error"][-200:] for r in failed)]
    return rows
