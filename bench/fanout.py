"""Scenario 1, fan-out: N subscribers in one room, an open-loop publisher at rising rates.

A step publishes at a fixed rate for a few seconds and *passes* when every message
reached every subscriber (nothing dropped, no connection closed) with p99 under
50 ms: the highest passing rate is "max sustained". On a shared machine p99 is
noisy, so the search itself goes on while a server merely *keeps up* (everything
delivered, p99 under 500 ms): the rate rises by half until a step fails that,
then two bisections narrow the edge. Two more steps follow: one at 80 % of the
highest rate with p99 under 50 ms (of the highest kept-up rate if none passed) gives
the latency figures (issue 19: "p99 < 20 ms at 80 % of that rate"), and one at 120 %
of the highest kept-up rate shows what overload does: whether deliveries go on near
the maximum, how many publications the server refused (Tidings answers
``WS_RATE_LIMITED`` past what it can deliver) and how many subscribers it dropped.
A server that cannot keep up with the first step is tried at half, a quarter and an
eighth of it, so a slow server gets a figure rather than a zero.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import CpuMeter, LoadGen, Server, free_port, load_average
from bench.peers import Peer, Publisher

P99_LIMIT_MS = 50.0  # the bar for "sustained"
KEEP_UP_P99_MS = 500.0  # the search goes on while a server keeps up at all
ON_PACE = 1.1
"""A step counts only if its publisher sent within this factor of the nominal time. A
publisher that waits for each answer (the desk editor's REST calls) falls behind when
the server does, and its late sends would otherwise pass for the rate asked: the
latency of each delivery is timed from its send, not from when it was due."""
FLOOR_HALVINGS = 3  # below a failed first step: half, a quarter, an eighth of it


class Rig:
    """One server, its subscribers and the publisher, set up and torn down together."""

    def __init__(self, peer: Peer, subscribers: int, workdir: Path) -> None:
        self.peer, self.subscribers, self.workdir = peer, subscribers, workdir
        self.server: Server | None = None
        self.loadgen: LoadGen | None = None
        self.session: aiohttp.ClientSession | None = None
        self.publisher: Publisher | None = None
        self._drain: asyncio.Task[None] | None = None

    async def up(self) -> dict[str, Any]:
        """Start the server, connect every subscriber and the publisher."""
        port = free_port()
        self.peer.extra["subscribers"] = self.subscribers
        self.server = self.peer.start(port, self.workdir)
        spec = self.peer.subscriber
        init = None
        if spec.init_lines:
            init = self.workdir / f"{self.peer.name}-init.txt"
            init.write_text("\n".join(spec.init_lines) + "\n")
        self.loadgen = LoadGen(port, conns=self.subscribers, path=spec.path, init=init,
                               ready_match=spec.ready_match, pong=spec.pong,
                               keepalive_hex=spec.keepalive_hex, ports=self.server.ports,
                               connect_parallel=spec.connect_parallel)
        seconds, status = await asyncio.to_thread(self.loadgen.wait_ready, 60.0)
        if status["ready"] < self.subscribers:
            raise RuntimeError(f"{self.peer.name}: only {status} of {self.subscribers} "
                               f"subscribers ready:\n{self.server.log_tail()}")
        self.session = aiohttp.ClientSession()
        self.publisher = await self.peer.publisher(self.session, port)
        self._drain = asyncio.create_task(self.publisher.drain())
        await asyncio.sleep(0.5)  # let subscriptions settle (Nchan, socket.io rooms)
        return {"connect_seconds": round(seconds, 3)}

    async def down(self) -> None:
        """Stop everything this rig started."""
        if self._drain is not None:
            self._drain.cancel()
        if self.publisher is not None:
            await self.publisher.close()
        if self.session is not None:
            await self.session.close()
        if self.loadgen is not None:
            self.loadgen.stop()
        if self.server is not None:
            self.server.stop()
        self.server = self.loadgen = self.session = self.publisher = self._drain = None

    async def step(self, deliveries_per_s: float, seconds: float) -> dict[str, Any]:
        """Publish at a rate for ``seconds``, wait for the deliveries to settle, measure."""
        assert self.loadgen is not None and self.publisher is not None
        assert self.server is not None
        lg, pub = self.loadgen, self.publisher
        rate = deliveries_per_s / self.subscribers
        count = max(1, round(rate * seconds))
        await asyncio.to_thread(lg.command, "reset")
        # Only Tidings' /ws publisher counts refusals (a publisher without the attribute,
        # such as the desk editor of tidings_sio.py, is never refused).
        refused_before = getattr(pub, "refused", 0)
        meter, t0 = CpuMeter(self.server.measured_pids, lg.proc.pid), time.monotonic()
        for i in range(count):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0.001:
                await asyncio.sleep(delay)
            await pub.send()
        sent_for = time.monotonic() - t0
        expected = count * self.subscribers
        last, still = -1, 0.0
        while True:  # until every delivery arrived or nothing moved for 1 s
            await asyncio.sleep(0.1)
            got = (await asyncio.to_thread(lg.command, "count"))["deliveries"]
            if got >= expected:
                break
            still = still + 0.1 if got == last else 0.0
            if still >= 1.0 or time.monotonic() - t0 > seconds + 15:
                break
            last = got
        cpu = meter.read()
        rep = await asyncio.to_thread(lg.command, "report")
        # Refused publications never reach anyone: the rest must all arrive.
        refused = getattr(pub, "refused", 0) - refused_before
        expected -= refused * self.subscribers
        return judge({
            "target_deliveries_per_s": round(deliveries_per_s),
            "publishes": count, "refused": refused, "publish_seconds": round(sent_for, 3),
            "nominal_seconds": round(count / rate, 3),
            "expected": expected, "delivered": rep["deliveries"],
            # over the nominal duration (count / rate), or longer if the publisher lagged:
            # the last send is at (count - 1) / rate, which overstates low rates
            "delivered_per_s": round(rep["deliveries"] / max(sent_for, count / rate)),
            "p50_ms": rep["p50_ms"], "p99_ms": rep["p99_ms"], "p999_ms": rep["p999_ms"],
            "max_ms": rep["max_ms"], "closed": rep["closed"],
            **cpu,
        })


def judge(step: dict[str, Any]) -> dict[str, Any]:
    """Add a step's verdicts: ``on_pace`` (the publisher sent within ``ON_PACE`` of the
    nominal time), ``passed`` (every delivery, p99 < 50 ms) and ``kept_up`` (every
    delivery, p99 < 500 ms). A refusal is the server shedding load and a late publisher
    a rate never offered: either step is past the maximum."""
    on_pace = step["publish_seconds"] <= ON_PACE * step["nominal_seconds"]
    sound = (step["delivered"] == step["expected"] and step["closed"] == 0 and on_pace
             and not step["refused"])
    return {**step, "on_pace": on_pace, "passed": sound and step["p99_ms"] < P99_LIMIT_MS,
            "kept_up": sound and step["p99_ms"] < KEEP_UP_P99_MS}


async def search(peer: Peer, subscribers: int, workdir: Path, *, start: float,
                 step_seconds: float, bisections: int = 2,
                 ceiling: float = 600_000) -> dict[str, Any]:
    """One repetition: find the highest passing rate, then measure at 80 % of it."""
    rig = Rig(peer, subscribers, workdir)
    steps: list[dict[str, Any]] = []
    try:
        info = await rig.up()
    except BaseException:  # e.g. not every subscriber got ready: stop what did start
        await rig.down()
        raise
    try:
        async def run(rate: float) -> bool:
            result = await rig.step(rate, step_seconds)
            steps.append(result)
            if result["closed"]:  # a failed step dropped subscribers: start afresh
                await rig.down()
                await rig.up()
            return bool(result["kept_up"])

        await rig.step(min(start, 5000), 1.0)  # warm-up, not recorded
        best, worst, rate = 0.0, 0.0, start
        while rate <= ceiling:
            if not await run(rate):
                worst = rate
                break
            best, rate = rate, rate * 1.5
        below = worst
        for _ in range(FLOOR_HALVINGS if not best else 0):  # the first step failed
            below /= 2
            if await run(below):
                best = below
                break
            worst = below
        for _ in range(bisections if worst else 0):
            mid = (best + worst) / 2
            if await run(mid):
                best = mid
            else:
                worst = mid
        passing = [s for s in steps if s["passed"]]
        top = max(passing, key=lambda s: s["target_deliveries_per_s"]) if passing else None
        base = top["target_deliveries_per_s"] if top else best
        at80 = await rig.step(0.8 * base, step_seconds) if base else None
        over = await rig.step(1.2 * best, step_seconds) if best else None
    finally:
        await rig.down()
    return {"max_sustained_deliveries_per_s": top["target_deliveries_per_s"] if top else 0,
            "max_kept_up_deliveries_per_s": round(best),
            "at_max": top, "at_80pct": at80,
            "at_80pct_of": "max sustained" if top else "max kept up",
            "over_120pct": over, "steps": steps,
            "connect_seconds": info["connect_seconds"], "load_average": load_average()}
