"""Cluster-wide answers for the server API: scatter a :class:`ControlQuery` over the
bus, gather one :class:`ControlAnswer` per live node.

The bus has no replies, so every node publishes its answer to all and only the asking
node keeps it. The asker expects the nodes the registry lists as live when it asks; it
waits until each has answered or ``timeout`` passes, and names the nodes that did not
answer (a node killed within ``node_timeout`` is still listed), so a caller always
knows whether an answer is whole. Disconnects go the same way: each node closes its
own sockets and says how many.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import msgspec

from tidings.bus.base import Bus, ControlAnswer, ControlQuery, Event
from tidings.cluster.base import Registry
from tidings.control.node import LocalNode

log = logging.getLogger(__name__)

TIMEOUT = 3.0  # seconds a query waits for the slowest node
KINDS = ("connections", "disconnect", "unsubscribe", "presence", "channels")


class Gathered(msgspec.Struct):
    """Every node's answer (node id -> answer) and the live nodes that gave none."""

    answers: dict[str, dict[str, Any]]
    missing: list[str]


class _Pending:
    __slots__ = ("answers", "done", "expected")

    def __init__(self, expected: set[str]) -> None:
        self.expected = expected
        self.answers: dict[str, dict[str, Any]] = {}
        self.done = asyncio.Event()


class ClusterControl:
    """Asks every node, answers for this one (register :meth:`on_event` with the hub)."""

    def __init__(self, node: LocalNode, bus: Bus, registry: Registry, *,
                 timeout: float = TIMEOUT) -> None:
        self.node = node
        self._bus = bus
        self._registry = registry
        self._timeout = timeout
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def node_id(self) -> str:
        """This node's id in the cluster."""
        return self._registry.node_id

    async def ask(self, kind: str, **args: Any) -> Gathered:
        """Ask every live node; raise ``OSError`` if the registry cannot say which."""
        try:
            live = {n.node_id for n in await self._registry.nodes()}
        except Exception as exc:
            raise OSError(f"cluster registry: {exc}") from exc
        query_id = secrets.token_hex(8)
        pending = _Pending(live | {self.node_id})
        self._pending[query_id] = pending
        try:
            await self._bus.publish(ControlQuery(query_id, self.node_id, kind, args))
            try:
                async with asyncio.timeout(self._timeout):
                    await pending.done.wait()
            except TimeoutError:
                pass
        finally:
            del self._pending[query_id]
        return Gathered(dict(pending.answers), sorted(pending.expected - set(pending.answers)))

    def on_event(self, event: Event) -> None:
        """Answer queries; collect answers to this node's."""
        if isinstance(event, ControlQuery):
            task = asyncio.get_running_loop().create_task(self._answer(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, ControlAnswer) and event.origin == self.node_id:
            pending = self._pending.get(event.query_id)
            if pending is not None:
                pending.answers[event.node] = event.answer
                if pending.expected <= set(pending.answers):
                    pending.done.set()

    async def _answer(self, query: ControlQuery) -> None:
        try:
            answer = await self.local(query.kind, query.args)
        except Exception as exc:  # one node's failure is its answer, not everyone's
            log.warning("control query %s failed: %r", query.kind, exc)
            answer = {"error": str(exc) or type(exc).__name__}
        try:
            await self._bus.publish(ControlAnswer(query.query_id, query.origin, self.node_id,
                                                  answer))
        except Exception as exc:
            log.warning("answering control query %s failed: %s", query.kind, exc)

    async def local(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        """This node's answer to one query."""
        node = self.node
        if kind == "connections":
            return {"connections": node.connections(args.get("user_id"))}
        if kind == "disconnect":
            # Connection ids are unique per node only: one named connection is its node's.
            if args.get("node") not in (None, self.node_id):
                return {"closed": 0}
            return {"closed": node.disconnect(int(args["user_id"]), args.get("conn_id"),
                                              int(args["code"]), str(args["reason"]))}
        if kind == "unsubscribe":
            return {"unsubscribed": await node.unsubscribe(int(args["user_id"]),
                                                           str(args["channel"]))}
        if kind == "presence":
            return {"clients": [list(c) for c in node.presence(str(args["channel"]))]}
        if kind == "channels":
            return {"channels": node.channels()}
        raise ValueError(f"unknown control query {kind!r}")

    async def close(self) -> None:
        """Wait for answers still being sent."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
