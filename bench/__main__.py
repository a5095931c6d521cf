"""``python -m bench``: run the benchmark scenarios and record the figures.

``make bench`` runs everything (minutes); ``make bench-quick`` a smoke version
under a minute. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from bench import chat, cluster, connections, fanout, report, storm, tidings_sio
from bench.harness import ROOT, build_wsload, commit, load_average, machine, nofile_limit
from bench.peers import PEERS

PEERS["tidings-socketio"] = tidings_sio.peer()
ALL_PEERS = ["nchan", "node-ws", "node-socketio", "python-socketio", "tidings-socketio"]
ALL_SCENARIOS = "fanout,connections,workers,chat,cluster,storm"
LABELS = {**{n: p.label for n, p in PEERS.items()}, "tidings": "Tidings /ws (MessagePack)"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: small sizes, one repetition, Node ws and Tidings' "
                        "/socket.io as the only peers, one cluster layout")
    p.add_argument("--scenarios", default=ALL_SCENARIOS,
                   help=f"comma-separated: {ALL_SCENARIOS.replace(',', ', ')} (default: all)")
    p.add_argument("--layouts", default=None,
                   help="cluster layouts, comma-separated: " + ", ".join(
                       f"'{k}'" for k in cluster.LAYOUTS) + " (default: all; quick: "
                       "the 2-core one)"),
    p.add_argument("--peers", default=None,
                   help=f"comma-separated peers (default: {','.join(ALL_PEERS)})")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 3; quick 1)")
    p.add_argument("--subscribers", type=int, default=None, help="fan-out room size (1000)")
    p.add_argument("--connections", default=None,
                   help="comma-separated idle connection counts (default 10000; at most "
                        "the hard file-descriptor limit minus a margin: "
                        f"{nofile_limit() - 1000} here)")
    p.add_argument("--workers-connections", type=int, default=None,
                   help="idle /ws connections held by `serve --workers` (default 50000; "
                        "quick 2000), spread over load generator processes")
    p.add_argument("--workers", type=int, default=3, help="`serve --workers N` (default 3)")
    p.add_argument("--stores", default="sqlite,postgres", help="chat scenario stores")
    p.add_argument("--chat-rates", default="5000,10000,15000,20000,25000",
                   help="the chat scenario's open-loop rates, chats/s in all (default "
                        "5000,10000,15000,20000,25000; a rate the server cannot keep up "
                        "with ends the series)")
    p.add_argument("--chat-acks", action="store_true",
                   help="in the chat scenario, recipients answer every push with a delivery "
                        "ack, as seed 001's clients do")
    p.add_argument("--storm-clients", type=int, default=None,
                   help="reconnect storm size (default 10000; quick 100)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                   help="where the JSON results go (default bench/results)")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md",
                   help="Markdown file the tables are appended to")
    p.add_argument("--no-docs", action="store_true", help="do not append to the docs")
    return p.parse_args(argv)


async def guarded(what: str, run: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """One repetition; if it cannot run (a server that does not start, subscribers that
    do not get ready) its error is recorded and the run goes on with the next one."""
    try:
        return await run
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"{what}: failed: {exc}", file=sys.stderr, flush=True)
        return {"error": str(exc)[-2000:], "load_average": load_average()}


async def main(argv: list[str]) -> int:
    """Run the chosen scenarios; write JSON and Markdown."""
    args = parse_args(argv)
    quick = args.quick
    reps = args.reps or (1 if quick else 3)
    peers = (args.peers.split(",") if args.peers else
             (["node-ws", "tidings-socketio"] if quick else ALL_PEERS))
    scenarios = args.scenarios.split(",")
    build_wsload()
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y-%m-%d")
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    header: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"), "quick": quick, "reps": reps,
        "commit": commit(), "machine": machine(),
        "versions": {n: PEERS[n].version() for n in peers if n != "tidings"},
        "load_average_at_start": load_average(),
    }
    md = [f"\n## Run of {started:%Y-%m-%d %H:%M} UTC{' (quick)' if quick else ''}, "
          f"commit `{header['commit']}`\n",
          f"Machine: {header['machine']['cpu']}, {header['machine']['cores']} cores, "
          f"{header['machine']['memory_gib']} GiB, Linux {header['machine']['kernel']}, "
          f"Python {header['machine']['python']}, Node {header['machine']['node']}, "
          f"{header['machine']['nginx']}. Peers: "
          + ", ".join(f"{LABELS[n]} ({v})" for n, v in header["versions"].items())
          + f". {reps} repetition(s); figures are median [min-max]. Load average "
          f"(1/5/15 min) at start: {header['load_average_at_start']}.\n"]
    written = []
    try:
        if "fanout" in scenarios:
            subs = args.subscribers or (100 if quick else 1000)
            results: dict[str, list[dict[str, Any]]] = {}
            names = [*peers, "tidings"]
            for rep in range(reps):
                for name in names:  # interleaved, so load drifts hit every server alike
                    print(f"fanout {name} rep {rep + 1}/{reps}", file=sys.stderr, flush=True)
                    r = await guarded(f"fanout {name}", fanout.search(
                        PEERS[name], subs, workdir, start=2000 if quick else 10000,
                        step_seconds=0.5 if quick else 1.5, bisections=0 if quick else 1,
                        ceiling=10_000 if quick else 600_000))
                    results.setdefault(name, []).append(r)
            doc = {**header, "scenario": "fanout", "subscribers": subs, "results": results}
            written.append(report.write_json(args.out, stamp, "fanout", doc))
            md += [f"\n### Fan-out: {subs} subscribers, one room, ~100-byte messages\n", "",
                   *report.fanout_table(results, LABELS),
                   "\n\"At 80 %\": of the highest rate with p99 < 50 ms (of the highest kept-up "
                   "rate where none passed).\n",
                   "\n#### Overload: one step at 120 % of each server's highest kept-up rate\n",
                   "", *report.overload_table(results, LABELS)]
        if "cluster" in scenarios:
            subs = args.subscribers or (100 if quick else 1000)
            layouts = (args.layouts.split(",") if args.layouts else
                       ["2 nodes on 2 cores"] if quick else list(cluster.LAYOUTS))
            cl_results: dict[str, list[dict[str, Any]]] = {}
            for rep in range(reps):
                for layout in layouts:
                    print(f"cluster {layout} rep {rep + 1}/{reps}", file=sys.stderr, flush=True)
                    r = await guarded(f"cluster {layout}", fanout.search(
                        cluster.TidingsCluster(layout), subs, workdir,
                        start=2000 if quick else 10000, step_seconds=0.5 if quick else 1.5,
                        bisections=0 if quick else 1, ceiling=10_000 if quick else 600_000))
                    cl_results.setdefault(layout, []).append(r)
            doc = {**header, "scenario": "cluster", "subscribers": subs,
                   "layouts": {k: cluster.LAYOUTS[k] for k in layouts}, "results": cl_results}
            written.append(report.write_json(args.out, stamp, "cluster", doc))
            md += [f"\n### Cluster fan-out: {subs} subscribers over Tidings nodes on the Redis "
                   "bus, publisher on the first node (server CPU = nodes + Redis)\n", "",
                   *report.fanout_table(cl_results, {k: f"Tidings /ws, {k}" for k in layouts},
                                        reference="1 node")]
        if "connections" in scenarios:
            counts = ([int(c) for c in args.connections.split(",")] if args.connections
                      else [200] if quick else [10_000])
            conn_results: dict[str, list[dict[str, Any]]] = {}
            # The quick run leaves Tidings' /socket.io out here: fan-out covers it.
            conn_peers = [n for n in [*peers, "tidings"]
                          if not (quick and n == "tidings-socketio")]
            if "tidings-socketio" in conn_peers:  # the aiohttp floor under it, beside it
                conn_peers.insert(conn_peers.index("tidings-socketio"), "aiohttp-eio")
                header["versions"]["aiohttp-eio"] = PEERS["aiohttp-eio"].version()
            for count in counts:
                for rep in range(reps):
                    for name in conn_peers:
                        print(f"connections {name} {count} rep {rep + 1}/{reps}",
                              file=sys.stderr, flush=True)
                        if name == "tidings":
                            r = await connections.tidings_run(count, workdir, src_addrs=4)
                        else:
                            r = await connections.peer_run(PEERS[name], count, workdir, 4)
                        conn_results.setdefault(name, []).append(r)
            doc = {**header, "scenario": "connections", "results": conn_results}
            written.append(report.write_json(args.out, stamp, "connections", doc))
            md += ["\n### Idle connections (authenticated for Tidings, subscribed for peers)\n",
                   "", *report.connections_table(conn_results, LABELS)]
        if "workers" in scenarios:
            count = args.workers_connections or (2000 if quick else 50_000)
            # One load generator per 17 000 sockets: each process may hold at most the
            # hard descriptor limit (20 000 here).
            gens = max(1, -(-count // 17_000))
            w_results: list[dict[str, Any]] = []
            for rep in range(reps):
                print(f"workers {count} rep {rep + 1}/{reps}", file=sys.stderr, flush=True)
                w_results.append(await guarded("workers", connections.tidings_workers_run(
                    count, workdir, workers=args.workers, loadgens=gens)))
            doc = {**header, "scenario": "connections-workers", "results": w_results}
            written.append(report.write_json(args.out, stamp, "connections-workers", doc))
            md += [f"\n### {count} idle /ws connections on `serve --workers {args.workers}` "
                   "(authenticated and subscribed), and fan-out to all of them\n", "",
                   *connections.workers_table(w_results)]
        if "chat" in scenarios:
            chat_results = await chat.scenario(
                workdir, ["sqlite"] if quick else args.stores.split(","), reps=reps,
                quick=quick, rates=[1000.0] if quick else
                [float(r) for r in args.chat_rates.split(",")], acks=args.chat_acks)
            doc = {**header, "scenario": "chat", "results": chat_results}
            written.append(report.write_json(args.out, stamp, "chat", doc))
            acking = "; recipients ack every push" if args.chat_acks else ""
            md += [f"\n### Durable chat (Tidings only: acknowledged after store{acking})\n", "",
                   *report.chat_table(chat_results), "", *report.chat_summary(chat_results)]
        if "storm" in scenarios:
            clients = args.storm_clients or (100 if quick else 10_000)
            storms: list[dict[str, Any]] = []
            rates: list[dict[str, Any]] = []
            c_storms: list[dict[str, Any]] = []
            for rep in range(reps):
                print(f"storm {clients} rep {rep + 1}/{reps}", file=sys.stderr, flush=True)
                c_storms.append(await guarded("storm (C clients)", storm.c_run(workdir, clients)))
                storms.append(await guarded("storm", storm.run(workdir, clients)))
                rates.append(await guarded("auth rate",
                                           storm.auth_rate(workdir, min(clients, 2000))))
            doc = {**header, "scenario": "storm", "results": storms, "auth_rate": rates,
                   "c_results": c_storms}
            written.append(report.write_json(args.out, stamp, "storm", doc))
            md += [f"\n### Reconnect storm: {clients} SDK clients, node SIGKILLed and "
                   "restarted (SQLite)\n", "", *storm.table(storms, rates),
                   f"\n### Reconnect storm: {clients} C clients (wsload --reconnect), node "
                   "SIGKILLed and restarted (SQLite)\n", "", *storm.c_table(c_storms)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    md.append(f"\nLoad average (1/5/15 min) at the end: {load_average()}.\n")
    if not args.no_docs:
        with args.docs.open("a") as f:
            f.write("\n".join(md) + "\n")
    print("\n".join(md))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
