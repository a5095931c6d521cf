"""Network partitions under the delivery ledger: a cluster node's links to its store,
its bus or its clients go through fault proxies (tests/support/proxy.py) that
blackhole, delay, cut or half-open them while the node itself keeps running.

:func:`partitions` runs one of them: 3 nodes on a store (PostgreSQL or Redis) and a
bus (Redis or PostgreSQL), node A's chosen links proxied, each user's devices on two
nodes; the fault strikes ``faults`` times under load, ``down`` seconds each. Besides
the ledger (0 lost, 0 duplicated, in order) it measures what the operator sees:
how long A took to report itself unhealthy (``/api/health`` 503) and healthy again,
and whether presence converged: every user shown online on every node after the
last fault, and a user whose only device left A *during* a partition shown offline
everywhere within ``node_timeout`` of the heal.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

from tests.chaos.ledger import Ledger
from tests.chaos.node import NodeProcess
from tests.chaos.scenarios import Result, _finish
from tests.chaos.traffic import Account, Traffic, create_accounts
from tests.support.proxy import Proxy
from tests.support.services import PostgresServer, RedisServer
from tidings.client import Client, ConnectionLostError, ReconnectPolicy

FAULTS = ("block", "half-open", "delay", "drop")
LINKS = ("store", "bus", "backend", "clients")
HEARTBEAT, NODE_TIMEOUT = 0.5, 3.0


def health(http_url: str) -> int:
    """The status of ``/api/health`` (0: no answer within 5 s)."""
    try:
        with urllib.request.urlopen(http_url + "/api/health", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def presence(http_url: str, token: str, user_ids: list[int],
             timeout: float = 5.0) -> dict[int, str]:
    """What one node's ``/api/v1/presence`` says of these users ({}: no answer within
    ``timeout``)."""
    query = ",".join(map(str, user_ids))
    request = urllib.request.Request(f"{http_url}/api/v1/presence?user_ids={query}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return {int(p["user_id"]): str(p["status"]) for p in json.loads(r.read())["presence"]}
    except OSError:
        return {}


def _through(url: str, proxy: Proxy) -> str:
    """``url`` with its port replaced by the proxy's."""
    head, _, tail = url.rpartition(":")
    port, _, rest = tail.partition("/")
    assert port.isdigit(), url
    return f"{head}:{proxy.port}/{rest}"


class _Strike:
    """Applies one fault to a set of proxies, and heals it."""

    def __init__(self, fault: str, proxies: list[Proxy]) -> None:
        self.fault, self.proxies = fault, proxies

    def start(self) -> None:
        for p in self.proxies:
            if self.fault == "block":
                p.block()
            elif self.fault == "half-open":
                p.half_open()
                p.block()  # and nothing new gets through until the heal
            elif self.fault == "delay":
                p.delay(0.3)
            else:  # drop: every connection cut mid-stream, and again while it lasts
                p.cut()

    def tick(self) -> None:
        if self.fault == "drop":
            for p in self.proxies:
                p.cut()

    def heal(self) -> None:
        for p in self.proxies:
            p.heal()


async def partitions(fault: str, *, bus: str = "redis", store: str = "postgres",
                     link: str = "backend", users: int = 6, devices: int = 2,
                     faults: int = 2, interval: float = 2.0, down: float = 4.0,
                     name: str = "") -> Result:
    """Chat through a 3-node cluster while node A's ``link`` suffers ``fault``
    (see the module docstring); ``link`` is ``store``, ``bus`` (with the cluster
    registry), ``backend`` (both) or ``clients``."""
    if fault not in FAULTS or link not in LINKS or bus not in ("redis", "postgres") \
            or store not in ("redis", "postgres"):
        raise ValueError(f"unknown partition {fault!r} {link!r} {bus!r} {store!r}")
    started = time.monotonic()
    pg = PostgresServer()
    redis = RedisServer() if "redis" in (bus, store) else None
    procs: list[NodeProcess] = []
    proxies: dict[str, Proxy] = {}
    ledger = Ledger()
    traffic: Traffic | None = None
    lonely: Client | None = None
    try:
        await asyncio.to_thread(pg.start)
        if redis is not None:
            await asyncio.to_thread(redis.start)
        urls = {"postgres": pg.url, "redis": redis.url if redis else ""}
        store_url, bus_url = urls[store], urls[bus]
        extra = {"apps_database_url": pg.url} if store == "redis" else {}
        for role, url in (("store", store_url), ("bus", bus_url)):
            proxies[role] = await Proxy(*_host_port(url)).start()
        settings: dict[str, Any] = {"heartbeat_interval": HEARTBEAT,
                                    "node_timeout": NODE_TIMEOUT, "rate_limit": 1000,
                                    "rate_burst": 1000, **extra}
        procs.append(NodeProcess(_through(store_url, proxies["store"]),
                                 bus_url=_through(bus_url, proxies["bus"]), **settings))
        procs += [NodeProcess(store_url, bus_url=bus_url, **settings) for _ in range(2)]
        accounts = await create_accounts(store_url, users + 1)
        accounts, loner = accounts[:users], accounts[users]
        for proc in procs:
            await asyncio.to_thread(proc.start)
        a = procs[0]
        proxies["clients"] = await Proxy("127.0.0.1", a.port).start()
        ws = [proxies["clients"].ws_url, *(p.ws_url for p in procs[1:])]
        traffic = Traffic(ws[0], ledger, nodes=ws)
        await traffic.connect(accounts, devices)
        traffic.start_sending([acc.user_id for acc in accounts])
        cut = [proxies[r] for r in {"backend": ("store", "bus")}.get(link, (link,))]
        strike = _Strike(fault, cut)
        unhealthy: list[float] = []
        healthy: list[float] = []
        offline: list[float] = []
        for _ in range(faults):
            await asyncio.sleep(interval)
            lonely = await _lonely(a.ws_url, loner)  # one device, on node A only
            strike.start()
            hit = time.monotonic()
            seen_503 = None
            while time.monotonic() - hit < down:
                strike.tick()
                if seen_503 is None and link != "clients" and \
                        await asyncio.to_thread(health, a.http_url) == 503:
                    seen_503 = time.monotonic() - hit
                if lonely is not None and time.monotonic() - hit > down / 2:
                    await lonely.close()  # its only device leaves while A is cut off
                    lonely = None
                await asyncio.sleep(0.25)
            strike.heal()
            healed = time.monotonic()
            # Watched from the heal on, beside the health checks below.
            converging = asyncio.ensure_future(_converged(procs, [loner], "offline", healed))
            if seen_503 is not None:
                unhealthy.append(seen_503)
            if link != "clients":
                async with asyncio.timeout(30.0):
                    while await asyncio.to_thread(health, a.http_url) != 200:
                        await asyncio.sleep(0.2)
                healthy.append(time.monotonic() - healed)
            offline.append(await converging)
        await asyncio.sleep(interval)
        figures, settle = await _finish(traffic, ledger)
        online = await _converged(procs, accounts, "online", time.monotonic())
        logs = [p.log_text() for p in procs]
        errors = [line for text in logs for line in text.splitlines() if " ERROR " in line]
        notes: dict[str, Any] = {
            "unhealthy_after_s": round(max(unhealthy), 2) if unhealthy else None,
            "healthy_again_s": round(max(healthy), 2) if healthy else None,
            "faults_seen_503": len(unhealthy),
            "offline_converged_s": round(max(offline), 2),
            "online_converged_s": round(online, 2),
            "settle_s": round(settle, 2), "node_error_lines": len(errors),
            "node_errors_sample": errors[:3]}
        return Result(name or f"{fault} {link}, {bus} bus, {store} store", figures,
                      time.monotonic() - started, faults, notes)
    except BaseException:
        if traffic is not None:  # where each device was, and why it left
            for device, client in traffic.clients.items():
                gone = [(c, r) for d, c, r in traffic.disconnects if d == device]
                print(f"--- {device}: connected {client.connected}, nodes "
                      f"{traffic.nodes_of(device)}, disconnects {gone[-4:]}")
        for proc, label in zip(procs, "ABC", strict=False):  # what the nodes said
            records = [x for x in proc.log_text().splitlines() if x[:2] == "20"]
            print(f"--- node {label} log (last 40 records)", *records[-40:], sep="\n")
        raise
    finally:
        if lonely is not None:
            await lonely.close()
        if traffic is not None:
            await traffic.close()
        for proc in procs:
            # SIGKILL: the run is over and checked. A node whose links were half-open
            # takes ~30 s to stop after its drain (each pool's close waits for its bound;
            # docs/reliability.md), which would only make the test longer.
            await asyncio.to_thread(proc.kill)
            await asyncio.to_thread(proc.close)
        for proxy in proxies.values():
            await proxy.aclose()
        if redis is not None:
            await asyncio.to_thread(redis.close)
        await asyncio.to_thread(pg.close)


def _host_port(url: str) -> tuple[str, int]:
    netloc = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = netloc.rpartition(":")
    return host, int(port)


async def _lonely(ws_url: str, account: Account) -> Client:
    """One device of ``account`` on this node. Its first connect is not retried by the
    SDK, and a node just healed may still refuse it (WS_INTERNAL_ERROR: its registry
    client finds its dead pooled connections one timeout at a time): try a few times."""
    for attempt in range(10):
        client = Client(ws_url, account.token, device_id="lonely",
                        reconnect=ReconnectPolicy(max_attempts=0))
        try:
            await client.connect()
            return client
        except ConnectionLostError:
            if attempt == 9:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


# Presence must converge within node_timeout of the heal: A's lease lapsed during the
# fault, so the others reaped its entries and announced its users offline; once A's
# registry link works again its heartbeat re-registers only the connections its hub
# still holds, and a device that left during the fault is not one of them (a reader
# stuck on a dead store link is stopped 1 s after its client's close, gateway/
# websocket.py). What takes time after the heal is A's first heartbeat on a dead pooled
# connection: it fails after node_timeout / 2, the registry's connections are reset and
# the next beat goes through (cluster/membership.py). Measured 0.1-2.5 s after the heal
# (docs/reliability.md). The margin is for asking three nodes over HTTP on a loaded
# machine (each answer can take a second there).
CONVERGENCE_MARGIN = 1.5
CONVERGENCE_BOUND = NODE_TIMEOUT + CONVERGENCE_MARGIN


async def _converged(procs: list[NodeProcess], users: list[Account], status: str,
                     since: float, timeout: float = CONVERGENCE_BOUND) -> float:
    """Seconds from ``since`` until every node shows ``status`` for ``users`` (each
    asked with the user's own token: a user may always see their own presence);
    raise AssertionError if that takes longer than ``timeout`` from ``since``."""
    try:
        left = max(0.0, since + timeout - time.monotonic())
        await _until_async(lambda: _all_show(procs, users, status), left)
    except TimeoutError:
        seen = [await asyncio.to_thread(presence, p.http_url, u.token, [u.user_id])
                for p in procs for u in users]
        raise AssertionError(f"presence not {status} within {timeout} s: {seen}") from None
    return time.monotonic() - since


async def _all_show(procs: list[NodeProcess], users: list[Account], status: str) -> bool:
    # Every node at once, each given 1 s: a node still finding its dead registry links
    # would otherwise hold a round for its whole answer time, and make a convergence
    # that happened meanwhile look late.
    seen = await asyncio.gather(*(asyncio.to_thread(presence, p.http_url, u.token,
                                                    [u.user_id], 1.0)
                                  for p in procs for u in users))
    return all(s.get(u.user_id) == status
               for s, u in zip(seen, [u for _ in procs for u in users], strict=True))


async def _until_async(condition: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.2)


