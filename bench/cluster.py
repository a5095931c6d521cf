"""Scenario 5, cluster fan-out: the fan-out scenario across Tidings nodes on the Redis bus.

The same room, subscribers, publisher, load generator and step search as scenario 1
(``bench/fanout.py``; Tidings' native ``/ws``, channel ``bench``, stored before
delivery), with the subscribers spread over the nodes (connection *i* to node
*i mod n*, one load generator process timing every delivery on one clock) and the
publisher on the first node. That node stores each publication and puts it on the
Redis bus; every node, itself included, hears it there and delivers to its own
subscribers. The nodes share one SQLite file (only the first one writes), as the
processes of ``tidings serve --workers`` do.

The machine has 2 cores and the load generator needs one, so the layouts are:

``1 node``
    one node on core 0, on the same Redis bus (so the only difference to the next
    layouts is the number of nodes);
``2 nodes on 1 core``
    both nodes on core 0: the same server CPU as one node, so this shows what
    splitting over the bus costs, not what it buys;
``2 nodes on 2 cores``
    the publishing node on core 0, the second node on core 1 next to the load
    generator and the publisher: the only way to give the cluster a second core
    here. The load generator's CPU and run-queue wait are in every step, so any
    harm to the measurement shows.

redis-server runs on core 0 in every layout. The server CPU figures add up both
nodes and Redis (over 100 % means more than one core's worth).
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import tidings_node
from bench.harness import LOAD_CORE, SERVER_CORE, Server, free_port
from bench.peers import SubscriberSpec, Tidings

LAYOUTS: dict[str, list[str]] = {
    "1 node": [SERVER_CORE],
    "2 nodes on 1 core": [SERVER_CORE, SERVER_CORE],
    "2 nodes on 2 cores": [SERVER_CORE, LOAD_CORE],
}


class NodeGroup(Server):
    """Several ``tidings serve`` processes and their redis-server, stopped together."""

    def __init__(self, nodes: list[Server], redis: object) -> None:  # no process of its own
        self.nodes, self._redis = nodes, redis
        self.name, self.port = "tidings-cluster", nodes[0].port
        self.proc = nodes[0].proc

    @property
    def measured_pids(self) -> list[int]:
        """Every node and redis-server."""
        return [n.proc.pid for n in self.nodes] + [int(getattr(self._redis, "pid", 0))]

    @property
    def ports(self) -> list[int]:
        """One port per node: the load generator spreads subscribers over them."""
        return [n.port for n in self.nodes]

    def log_tail(self, n: int = 20) -> str:
        """The end of every node's output."""
        return "\n".join(f"--- node {i} ---\n{node.log_tail(n)}"
                         for i, node in enumerate(self.nodes))

    def stop(self) -> None:
        """Stop the nodes, then Redis."""
        for node in reversed(self.nodes):
            node.stop()
        self._redis.close()  # type: ignore[attr-defined]


class TidingsCluster(Tidings):
    """Tidings' fan-out peer, run as ``len(cores)`` nodes on one Redis bus."""

    def __init__(self, layout: str) -> None:
        # 64 handshakes at a time: each MsgAuth claims a connection slot in Redis through
        # the node's redis-py pool, which holds 100 connections and refuses (1011) beyond.
        super().__init__(f"cluster: {layout}", f"Tidings /ws, {layout}",
                         SubscriberSpec(path="/ws", ready_match="recovered",
                                        connect_parallel=64))
        self.cores = LAYOUTS[layout]

    def start(self, port: int, workdir: Path) -> Server:
        from tests.support.services import RedisServer

        url = self.prepare(workdir)
        redis = RedisServer()
        redis.start()
        nodes: list[Server] = []
        try:
            os.sched_setaffinity(redis.pid, {int(SERVER_CORE)})
            for i, core in enumerate(self.cores):
                nodes.append(tidings_node.start(
                    workdir, url, port if i == 0 else free_port(), core=core,
                    bus_url=redis.url, **self.SETTINGS))
        except BaseException:
            for node in nodes:
                node.stop()
            redis.close()
            raise
        return NodeGroup(nodes, redis)
