"""``make chaos``: the ledger scenarios of ``make test``, longer and bigger, with their
figures written into ``docs/reliability.md`` (between the ``soak`` markers).

    python -m tests.chaos.soak                 # every scenario, rewrite the table
    python -m tests.chaos.soak --only storm    # scenarios whose name contains "storm"
    python -m tests.chaos.soak --no-write      # print only

Every scenario talks to 127.0.0.1 only, is bounded in size and time, and stops
what it started. A broken promise stops the run with the ledger's problems.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.chaos import partition, scenarios
from tests.chaos.ledger import LedgerError
from tests.support.services import PostgresServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"

Scenario = Callable[[], Awaitable[scenarios.Result]]


def _plan(tmp: str, pg: PostgresServer) -> dict[str, Scenario]:
    def sqlite(name: str) -> str:
        return f"sqlite:///{tmp}/{name}.db"

    return {
        "node kill -9, SQLite": lambda: scenarios.node_crashes(
            sqlite("crash"), users=20, devices=2, crashes=10, interval=3.0,
            name="node kill -9, SQLite"),
        "node kill -9, PostgreSQL": lambda: scenarios.node_crashes(
            pg.create_database("soak_crash"), users=20, devices=2, crashes=10,
            interval=3.0, name="node kill -9, PostgreSQL"),
        "SIGTERM drain + restart, SQLite": lambda: scenarios.node_crashes(
            sqlite("drain"), users=20, devices=2, crashes=5, interval=3.0, graceful=True,
            name="SIGTERM drain + restart, SQLite"),
        "SIGTERM drain + restart, PostgreSQL": lambda: scenarios.node_crashes(
            pg.create_database("soak_drain"), users=20, devices=2, crashes=5,
            interval=3.0, graceful=True, name="SIGTERM drain + restart, PostgreSQL"),
        "PostgreSQL restart": lambda: scenarios.postgres_restarts(
            users=20, devices=2, restarts=5, interval=3.0, pg_down=1.0),
        "Redis killed and restarted, 3-node cluster": lambda: scenarios.cluster_faults(
            "redis", nodes=3, users=20, devices=2, faults=5, interval=3.0, redis_down=1.0),
        "a node killed in a 3-node cluster": lambda: scenarios.cluster_faults(
            "node", nodes=3, users=20, devices=2, faults=5, interval=3.0),
        "reconnect storm": lambda: scenarios.reconnect_storm(
            sqlite("storm"), clients=10_000, chats_each=2),
        **_partitions(),
    }


def _partitions() -> dict[str, Scenario]:
    """Each partition fault 5 times, on both buses (tests/chaos/partition.py)."""
    cases = [(fault, bus, "postgres", "backend", 4.0)
             for bus in ("redis", "postgres")
             for fault in ("block", "half-open", "delay", "drop")]
    cases += [("block", "redis", "redis", "backend", 4.0),
              ("half-open", "redis", "redis", "backend", 4.0),
              ("drop", "redis", "postgres", "clients", 2.0),
              # Longer than the SDK's ping interval + timeout (5 + 5 s): devices move.
              ("block", "postgres", "postgres", "clients", 12.0)]
    plan: dict[str, Scenario] = {}
    for fault, bus, store, link, down in cases:
        name = f"partition: {fault} {link}, {bus} bus, {store} store"
        plan[name] = (lambda fault=fault, bus=bus, store=store, link=link, down=down,
                      name=name: partition.partitions(
                          fault, bus=bus, store=store, link=link, users=20, devices=2,
                          faults=5, interval=3.0, down=down, name=name))
    return plan


def _row(r: scenarios.Result) -> str:
    f = r.figures
    notes = ", ".join(f"{k} {v}" for k, v in r.notes.items() if k != "node_errors_sample")
    return (f"| {r.name} | {r.faults} | {r.seconds:.0f} s | {f.sent} | {f.acked} | "
            f"{f.refused} | {f.expected_deliveries} | {f.delivered} | {f.raw_frames} | "
            f"{f.redelivered} | {f.unacked_delivered} | {f.connections} | **{f.lost}** | "
            f"**{f.duplicated}** | **{f.out_of_order}** | **{f.phantom}** | {notes} |")


def _when() -> str:
    """Now, and the load average (1, 5, 15 min) the rows were measured at."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{now} (load average {load} at the end)"


def _table(results: list[scenarios.Result]) -> str:
    head = (f"Run by `make chaos` on {_when()}: {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}.\n\n"
            "| scenario | faults | time | chats sent | acked | refused | deliveries "
            "expected | delivered (SDK) | on the wire | redelivered | unacked but "
            "delivered | connections | lost | duplicated | out of order | never sent | "
            "notes |\n|" + "---|" * 17)
    return "\n".join([head, *(_row(r) for r in results)])


# " Rows “a”; “b”: run on <when and anything said of it>", up to the next such note.
_NOTE = re.compile(r" Rows ((?:“[^”]*”(?:; )?)+): run on .*?(?= Rows “|$)")


def heading_without(heading: str, ran: set[str]) -> str:
    """The table's heading less the notes of earlier runs whose rows all ran again."""
    def keep(note: re.Match[str]) -> str:
        return "" if set(re.findall(r"“([^”]*)”", note.group(1))) <= ran else note.group(0)
    return _NOTE.sub(keep, heading)


def write(results: list[scenarios.Result], keep: bool = False) -> None:
    """Replace the table between the markers of docs/reliability.md; with ``keep``
    (an ``--only`` run) replace only the rows of the scenarios that ran."""
    text = DOC.read_text()
    table = _table(results)
    old = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip().splitlines()
    if keep and len(old) > 3:
        new = {r.name: _row(r) for r in results}
        # A row that ran again keeps its place; a new scenario's row goes last.
        kept = [new.pop(row.split("|")[1].strip(), row) for row in old[4:]]
        # The old heading says when the kept rows ran; the new rows say when they did.
        rows = "; ".join(f"“{r.name}”" for r in results)
        note = f" Rows {rows}: run on {_when()}."
        heading = heading_without(old[0], {r.name for r in results}) + note
        table = "\n".join([heading, *old[1:4], *kept, *new.values()])
    block = f"{BEGIN}\n{table}\n{END}"
    DOC.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text,
                          flags=re.S))


async def main(only: str | None, write_doc: bool) -> int:
    """Run the scenarios; return the process exit code."""
    pg = PostgresServer()
    await asyncio.to_thread(pg.start)
    results: list[scenarios.Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tidings-soak-") as tmp:
            for name, run in _plan(tmp, pg).items():
                if only and only.lower() not in name.lower():
                    continue
                print(f"== {name} …", flush=True)
                try:
                    result = await run()
                except LedgerError as exc:
                    print(exc)
                    return 1
                except TimeoutError:
                    print(f"{name}: did not finish within its bound; not in the table")
                    continue
                print(_row(result), flush=True)
                results.append(result)
    finally:
        await asyncio.to_thread(pg.close)
    if write_doc and results:
        write(results, keep=only is not None)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite the doc")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.only, not args.no_write)))
