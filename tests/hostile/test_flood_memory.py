"""Memory under a flood at a consumer that never reads, measured on a real ``tidings
serve`` process (its RSS from /proc/PID/status, not this test's).

Eight senders push 80 MiB of 128 KiB chats at one recipient whose socket has a 4 KiB
receive buffer and is never read. The node must drop the recipient as a slow consumer
and keep its resident memory within a bound meanwhile: 128 KiB blocks are where
glibc's dynamic mmap threshold stops returning freed memory to the system, and a
never-reading socket is where queued frames pile up (docs/reliability.md, "Memory
under a flood").
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.chaos.node import NodeProcess
from tests.chaos.traffic import create_accounts
from tests.hostile.rawws import RawSocket
from tidings.client import Client, ReconnectPolicy, TidingsError

pytestmark = pytest.mark.slow

MiB = 1 << 20
SENDERS = 8
CHAT_BYTES = 128 * 1024
FLOOD_BYTES = 80 * MiB
BOUND = 48 * MiB


def status_kib(pid: int, field: str) -> int:
    """A ``VmRSS``-like field of /proc/PID/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


async def flood(node: NodeProcess, database_url: str) -> dict[str, float]:
    """Run the flood against ``node``; return what it measured (bytes, seconds)."""
    accounts = await create_accounts(database_url, SENDERS + 1)
    victim, senders = accounts[0], accounts[1:]
    target = SimpleNamespace(node=SimpleNamespace(settings=SimpleNamespace(host="127.0.0.1"),
                                                  port=node.port))
    raw = await RawSocket.upgrade(target, rcvbuf=4096)  # type: ignore[arg-type]
    clients: list[Client] = []
    try:
        await raw.auth(victim.token)
        raw.writer.transport.pause_reading()  # from here on it never reads
        for acc in senders:
            client = Client(node.ws_url, acc.token, device_id=f"s{acc.user_id}",
                            reconnect=ReconnectPolicy(max_attempts=0))
            await client.connect()
            clients.append(client)
        await asyncio.sleep(0.5)  # let the connects' allocations settle
        before = status_kib(node.pid, "VmRSS")
        anon, file = status_kib(node.pid, "RssAnon"), status_kib(node.pid, "RssFile")
        peak = before
        each = FLOOD_BYTES // CHAT_BYTES // SENDERS
        body = "x" * (CHAT_BYTES - 16)
        refused = 0

        async def send(client: Client, n: int) -> None:
            nonlocal refused
            for i in range(each):
                try:
                    await client.send_chat(victim.user_id, f"{n}.{i}|{body}")
                except TidingsError:
                    refused += 1

        started = time.monotonic()
        senders_done = asyncio.gather(*(send(c, n) for n, c in enumerate(clients)))
        while not senders_done.done():
            peak = max(peak, status_kib(node.pid, "VmRSS"))
            await asyncio.sleep(0.05)
        await senders_done
        seconds = time.monotonic() - started
        after = status_kib(node.pid, "VmRSS")
        return {"anon_growth": status_kib(node.pid, "RssAnon") - anon,
                "file_growth": status_kib(node.pid, "RssFile") - file, "before": before,
                "peak_growth": max(peak, after) - before,
                "after_growth": after - before, "seconds": seconds, "refused": refused,
                "chats": each * SENDERS}
    finally:
        for client in clients:
            await client.close()
        await raw.aclose()


async def test_a_flood_at_a_never_reading_consumer_keeps_the_node_rss_bounded(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'flood.db'}"
    node = NodeProcess(database_url, rate_limit=1000, rate_burst=1000, write_timeout=2.0)
    await asyncio.to_thread(node.start)
    try:
        got = await flood(node, database_url)
        log = node.log_text()
    finally:
        await asyncio.to_thread(node.close)
    assert got["refused"] == 0, got
    # The recipient was dropped as a slow consumer (4413) during the flood.
    assert "slow_consumer" in log or "send queue full" in log, log[-2000:]
    assert got["peak_growth"] < BOUND, {k: v / MiB if k != "seconds" else v
                                        for k, v in got.items()}
