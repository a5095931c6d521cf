"""A reconnect storm too big for one Python process: SDK clients in worker processes.

One process cannot run 10 000 :class:`tidings.client.Client` s (nor open their
sockets fast enough), so :class:`Swarm` starts ``workers`` processes, each running a
slice of the devices as ledger :class:`~tests.chaos.traffic.Traffic` (the SDK with the
recording transport and the SDK's own reconnect policy). The parent drives them step by
step over pipes — connect, send, wait until resynced, settle, hand in the ledger — and
checks one merged :class:`~tests.chaos.ledger.Ledger`, so a message sent from one
process and delivered in another is accounted for like any other.

Used by :func:`tests.chaos.scenarios.reconnect_storm` (``make test``, ``make chaos``)
and ``bench/storm.py`` (``make bench``). 127.0.0.1 only; every worker is stopped by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from tests.chaos.ledger import Ledger, Sent
from tests.chaos.traffic import Account, Traffic
from tidings.client import ReconnectPolicy

CLIENTS_PER_WORKER = 2500


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes (all their threads) have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):  # gone: it counts nothing more
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5))
    return total / os.sysconf("SC_CLK_TCK")


class SwarmError(RuntimeError):
    """A worker failed or did not answer in time."""


class MergedLedger(Ledger):
    """The workers' ledgers as one; ``expected`` from an index (the base class scans
    every sent message per device, too slow for 10 000 devices)."""

    def __init__(self) -> None:
        super().__init__()
        self._to: dict[int, list[Sent]] | None = None

    def absorb(self, devices: dict[str, Any], sent: dict[str, Sent]) -> None:
        """Add one worker's devices and sent messages (workers' devices are disjoint)."""
        self._devices.update(devices)
        self._sent.update(sent)
        self._to = None

    def expected(self, device: str) -> dict[int, Sent]:
        """Acknowledged messages this device must get, by id."""
        if self._to is None:
            self._to = defaultdict(list)
            for s in self._sent.values():
                if s.message_id is not None:
                    self._to[s.to].append(s)
                    if s.sender != s.to:
                        self._to[s.sender].append(s)
        user = self._devices[device].user_id
        return {s.message_id: s for s in self._to.get(user, [])
                if s.message_id is not None
                and (s.to == user or (s.sender == user and s.device != device))}


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    pipe: Connection
    devices: list[str]


class Swarm:
    """``accounts`` as one device each, spread over ``workers`` processes."""

    def __init__(self, url: str, accounts: list[Account], *, policy: ReconnectPolicy,
                 workers: int | None = None, ping_interval: float = 30.0,
                 concurrency: int = 50) -> None:
        self.url = url
        self.accounts = accounts
        self.policy = policy
        self.count = workers or max(1, -(-len(accounts) // CLIENTS_PER_WORKER))
        self.ping_interval = ping_interval
        self.concurrency = concurrency  # connects in flight per worker
        self._workers: list[_Worker] = []
        self.ledger = MergedLedger()

    async def start(self) -> None:
        """Start the worker processes (``spawn``: nothing of this loop is inherited)."""
        ctx = multiprocessing.get_context("spawn")
        for n in range(self.count):
            mine = self.accounts[n::self.count]
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, name=f"storm-worker-{n}", daemon=True,
                               args=(child, self.url, mine, self.policy, self.ping_interval,
                                     self.concurrency))
            proc.start()
            child.close()
            self._workers.append(_Worker(proc, parent, [f"u{a.user_id}d0" for a in mine]))

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    async def connect(self, timeout: float) -> float:
        """Connect every device; return the seconds it took."""
        started = time.monotonic()
        await self._ask_all(("connect",), timeout)
        return time.monotonic() - started

    async def start_sending(self, limit: int) -> None:
        """Every device starts sending ``limit`` chats to random peers (all devices)."""
        peers = [a.user_id for a in self.accounts]
        await self._ask_all(("send", peers, limit), 30.0)

    async def finish_sending(self, timeout: float) -> None:
        """Wait until every device's chats were answered (acked or refused)."""
        await self._ask_all(("finish", timeout), timeout + 30.0)

    async def resynced(self, since: float) -> tuple[int, float | None]:
        """How many devices finished a backlog replay on a connection opened after
        ``since`` (monotonic, system-wide), and when the last of them did."""
        answers = await self._ask_all(("resynced", since), 60.0)
        last = [t for _, t in answers if t is not None]
        return sum(n for n, _ in answers), max(last) if last else None

    async def reconnected(self, since: float) -> tuple[int, float | None]:
        """As :meth:`resynced`, for the SDK's ``Reconnected`` event (authenticated)."""
        answers = await self._ask_all(("reconnected", since), 60.0)
        last = [t for _, t in answers if t is not None]
        return sum(n for n, _ in answers), max(last) if last else None

    async def settle(self, timeout: float) -> float:
        """Wait until every device got every acknowledged message meant for it."""
        started = time.monotonic()
        sent: dict[str, Sent] = {}
        for part in await self._ask_all(("sent",), 120.0):
            sent.update(part)
        by_user: dict[int, list[int]] = defaultdict(list)
        for s in sent.values():
            if s.message_id is not None:
                by_user[s.to].append(s.message_id)
        # Each worker waits for its own devices: what they must get depends only on
        # the sent messages (the sender's other devices: none, one device a user here).
        wants = []
        for w in self._workers:
            devices = {d: sorted(by_user.get(int(d[1:].split("d")[0]), [])) for d in w.devices}
            wants.append(("settle", devices, timeout))
        await asyncio.gather(*(self._ask(w, msg, timeout + 60.0)
                               for w, msg in zip(self._workers, wants, strict=True)))
        return time.monotonic() - started

    async def collect(self) -> MergedLedger:
        """Merge every worker's ledger into :attr:`ledger` and return it."""
        for devices, sent in await self._ask_all(("ledger",), 300.0):
            self.ledger.absorb(devices, sent)
        return self.ledger

    async def close(self) -> None:
        """Close every client, then stop every worker by PID (killed if it lingers)."""
        with contextlib.suppress(Exception):
            await self._ask_all(("close",), 60.0)
        for w in self._workers:
            await asyncio.to_thread(w.process.join, 10.0)
            if w.process.is_alive() and w.process.pid is not None:
                os.kill(w.process.pid, signal.SIGKILL)
                await asyncio.to_thread(w.process.join, 10.0)
            w.pipe.close()
        self._workers.clear()

    async def _ask_all(self, message: tuple[Any, ...], timeout: float) -> list[Any]:
        return list(await asyncio.gather(*(self._ask(w, message, timeout)
                                           for w in self._workers)))

    async def _ask(self, worker: _Worker, message: tuple[Any, ...], timeout: float) -> Any:
        worker.pipe.send(message)
        ready = await asyncio.to_thread(worker.pipe.poll, timeout)
        if not ready:
            raise SwarmError(f"{worker.process.name}: no answer to {message[0]} "
                             f"within {timeout:.0f} s")
        ok, value = worker.pipe.recv()
        if not ok:
            raise SwarmError(f"{worker.process.name}: {message[0]} failed: {value}")
        return value


# The worker process.

def _worker_main(pipe: Connection, url: str, accounts: list[Account],
                 policy: ReconnectPolicy, ping_interval: float, concurrency: int) -> None:
    # uvloop, as the node runs: the workers are the storm's load generator, and on the
    # stock loop they spent ~2.8x the node's CPU (docs/benchmarks.md).
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency on Linux
        asyncio.run(_serve(pipe, url, accounts, policy, ping_interval, concurrency))
    else:
        uvloop.run(_serve(pipe, url, accounts, policy, ping_interval, concurrency))


async def _serve(pipe: Connection, url: str, accounts: list[Account],
                 policy: ReconnectPolicy, ping_interval: float, concurrency: int) -> None:
    ledger = Ledger()
    # One HTTP session for the worker's 2 500 devices, without aiohttp's default cap of
    # 100 connections: a session (cookie jar, connector) per connect cost ~10 % of a worker.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    traffic = Traffic(url, ledger, pause=0.0, ping_interval=ping_interval, session=session)
    try:
        while True:
            message = await asyncio.to_thread(pipe.recv)
            try:
                answer = await _step(traffic, ledger, accounts, policy, concurrency, message)
            except Exception as exc:
                pipe.send((False, repr(exc)))
                continue
            pipe.send((True, answer))
            if message[0] == "close":
                return
    finally:
        await traffic.close()
        await session.close()


async def _step(traffic: Traffic, ledger: Ledger, accounts: list[Account],
                policy: ReconnectPolicy, concurrency: int, message: tuple[Any, ...]) -> Any:
    what = message[0]
    if what == "connect":
        await traffic.connect(accounts, 1, policy=policy, concurrency=concurrency)
        return None
    if what == "send":
        traffic.stop.clear()
        traffic.start_sending(message[1], limit=message[2])
        return None
    if what == "finish":
        await traffic.finish_sending(message[1])
        return None
    if what in ("resynced", "reconnected"):
        since = message[1]
        times: dict[str, float] = {}
        for device, at in (traffic.synced if what == "resynced" else traffic.reconnects):
            if at >= since and device not in times:
                times[device] = at
        return len(times), max(times.values()) if times else None
    if what == "sent":
        return ledger._sent
    if what == "settle":
        wants: dict[str, list[int]] = message[1]
        devices = ledger._devices
        with contextlib.suppress(TimeoutError):  # what is missing then, the check reports
            async with asyncio.timeout(message[2]):
                while any(set(ids) - {e.message_id for e in devices[d].events}
                          for d, ids in wants.items()):
                    await asyncio.sleep(0.2)
        return None
    if what == "ledger":
        return ledger._devices, ledger._sent
    if what == "close":
        await traffic.close()
        return None
    raise ValueError(f"unknown step {what!r}")
