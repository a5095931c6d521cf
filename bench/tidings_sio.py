"""Tidings on its ``/socket.io`` endpoint (seed 000's desk map) as a fan-out peer.

Seed 000 has no client-to-room relay (the Node and python-socketio peers' ``pub``
event): its clients *watch* a floor of the desk map and the server pushes
``workstation_update`` to that floor's room whenever a desk changes. So that is what
is measured, unchanged: every subscriber connects with ``auth: {token, floor: 1}``
(a JWT) and is ready on ``connection_ack``; the publisher is an operator editing
desks' ``notes`` through the REST API (``PUT /api/workstations/{id}``), each edit
committed to the store, read back and emitted to the floor's room in the seed's
message format — and, as every desk event, also stored as a publication in channel
``desks:floor:1`` for ``/ws`` clients. The send time rides in ``notes``, so the C
load generator times each delivery as for the other peers. An event carries the
whole desk (~700 bytes on the wire), not ~100 bytes: that is the seed's format.

The publisher is open-loop: ``send`` starts the request and returns; answers are
read as they come (at most ``MAX_IN_FLIGHT`` outstanding, beyond which a send waits).
Edits go round-robin over the floor's 100 desks, so no desk changes twice within
one event's delivery (two quick edits of one desk may both carry its latest notes).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from bench.harness import Server
from bench.peers import PAD, Peer, Publisher, SubscriberSpec

MAX_IN_FLIGHT = 64
FLOOR = 1


async def prepare(database_url: str, users: int) -> list[int]:
    """Migrate, create ``users`` users and load a one-floor demo building (100 desks)."""
    from bench import tidings_node
    from tidings.apps.desks.db import open_desk_db
    from tidings.apps.desks.demo import load_demo

    ids = await tidings_node.create_users(database_url, users)
    db = open_desk_db(database_url)
    try:
        await load_demo(db, floors=1, desks_per_floor=100)
    finally:
        await db.close()
    return ids


def token(user_id: int) -> str:
    """A JWT the node under test accepts (``tidings_node.JWT_SECRET``)."""
    from bench import tidings_node

    return jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 86_400},
                      tidings_node.JWT_SECRET, algorithm="HS256")


class TidingsSocketIo(Peer):
    """Tidings' ``/socket.io``: subscribers in floor 1's room, desk edits as events."""

    PER_USER = 20  # Socket.IO clients of one user (the /ws limit does not apply)

    def version(self) -> str:
        from importlib.metadata import version

        return f"tidings {version('tidings')} (its own Engine.IO 4 / Socket.IO 5, tidings.sio)"

    def start(self, port: int, workdir: Path) -> Server:
        from bench import tidings_node

        url = f"sqlite:///{workdir}/desks-{time.time_ns()}.db"
        subscribers = int(self.extra.get("subscribers", 1000))
        count = (subscribers + self.PER_USER - 1) // self.PER_USER + 1
        with ThreadPoolExecutor(1) as pool:  # called from inside the bench's event loop
            users = pool.submit(asyncio.run, prepare(url, count)).result()
        self.extra["publisher_token"] = token(users[-1])
        self.subscriber.init_lines = [
            f't:40{{"token":"{token(u)}","floor":{FLOOR}}}' for u in users[:-1]]
        return tidings_node.start(workdir, url, port, http_rate_limit=0)

    async def publisher(self, session: aiohttp.ClientSession, port: int) -> Publisher:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {self.extra['publisher_token']}"}
        async with session.get(f"{base}/api/workstations", params={
                "floor_id": str(FLOOR), "limit": "500"}, headers=headers) as r:
            r.raise_for_status()
            desks = [int(w["id"]) for w in (await r.json())["workstations"]]
        if not desks:
            raise RuntimeError("tidings-socketio: the demo floor has no desks")
        return DeskEditor(session, base, headers, desks)


class DeskEditor(Publisher):
    """Edits one desk's ``notes`` per ``send`` (stamped now), without waiting for the answer."""

    def __init__(self, session: aiohttp.ClientSession, base: str, headers: dict[str, str],
                 desks: list[int]) -> None:
        self._session, self._base, self._headers, self._desks = session, base, headers, desks
        self._n = 0
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self.failed = 0

    async def send(self) -> None:
        """Start one ``PUT /api/workstations/{id}`` with ``notes`` = send time + padding."""
        await self._slots.acquire()
        desk = self._desks[self._n % len(self._desks)]
        self._n += 1
        notes = f"T@{time.time_ns() // 1000:016d} {PAD}"
        task = asyncio.create_task(self._put(desk, notes))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, desk: int, notes: str) -> None:
        try:
            async with self._session.put(f"{self._base}/api/workstations/{desk}",
                                         json={"notes": notes}, headers=self._headers) as r:
                await r.read()
                if r.status != 200:
                    self.failed += 1
        except aiohttp.ClientError:
            self.failed += 1
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Nothing to read: answers are read by each request."""
        await asyncio.Event().wait()

    async def close(self) -> None:
        """Wait (briefly) for the requests still in flight."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)


def peer() -> TidingsSocketIo:
    """The peer as ``bench.peers.PEERS`` lists it."""
    spec: dict[str, Any] = {"path": "/socket.io/?EIO=4&transport=websocket",
                            "ready_match": "connection_ack", "pong": ("2", "3")}
    return TidingsSocketIo("tidings-socketio", "Tidings /socket.io (desk events)",
                           SubscriberSpec(**spec))
