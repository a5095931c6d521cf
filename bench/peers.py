"""The servers compared: how to start each one, subscribe to it, and publish to it.

Each peer is the simplest broadcast server its library allows (``bench/peers/``).
Subscribers are the C load generator's connections; the publisher is one Python
WebSocket client on the load core (a few hundred publishes per second at most).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import BENCH, ROOT, Server

PEERS_DIR = BENCH / "peers"
PAD = "x" * 60


def payload_text(now_us: int | None = None) -> str:
    """A ~100-byte JSON message carrying its send time as ``T@`` + 16 digits (µs)."""
    t = now_us if now_us is not None else time.time_ns() // 1000
    return json.dumps({"t": f"T@{t:016d}", "d": PAD})


@dataclass
class SubscriberSpec:
    """How the load generator's connections subscribe."""

    path: str
    ready_match: str | None = None
    pong: tuple[str, str] | None = None
    init_lines: list[str] | None = None  # per connection: see bench/loadgen/wsload.c
    keepalive_hex: str | None = None
    connect_parallel: int = 256  # handshakes the load generator has in flight at once


@dataclass
class Peer:
    """A server under comparison."""

    name: str
    label: str
    subscriber: SubscriberSpec
    extra: dict[str, Any] = field(default_factory=dict)

    def version(self) -> str:
        """The library version measured."""
        return ""

    def start(self, port: int, workdir: Path) -> Server:
        """Start the server on 127.0.0.1:port, pinned to the server core."""
        raise NotImplementedError

    async def publisher(self, session: aiohttp.ClientSession, port: int) -> Publisher:
        """Open one publishing connection."""
        raise NotImplementedError


class Publisher:
    """One publishing WebSocket; ``send`` is called by the open-loop scheduler."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, prefix: str = "",
                 suffix: str = "") -> None:
        self.ws, self._prefix, self._suffix = ws, prefix, suffix
        self.refused = 0  # publications the server refused (only Tidings says so)

    async def send(self) -> None:
        """Publish one message stamped now."""
        await self.ws.send_str(self._prefix + payload_text() + self._suffix)

    async def drain(self) -> None:
        """Read (and drop) whatever the server sends back; answer Engine.IO pings."""
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                await self.ws.send_str("3")

    async def close(self) -> None:
        """Close the publishing connection."""
        await self.ws.close()


def _npm_version(package: str) -> str:
    meta = PEERS_DIR / "node_modules" / package / "package.json"
    return str(json.loads(meta.read_text())["version"]) if meta.exists() else ""


class NodeWs(Peer):
    """Node ``ws`` 8: a plain broadcast server."""

    def version(self) -> str:
        return f"ws {_npm_version('ws')}"

    def start(self, port: int, workdir: Path) -> Server:
        return Server(self.name, ["node", str(PEERS_DIR / "ws_server.js"), str(port)], port,
                      log=workdir / f"{self.name}.log").ready()

    async def publisher(self, session: aiohttp.ClientSession, port: int) -> Publisher:
        return Publisher(await session.ws_connect(f"ws://127.0.0.1:{port}/"))


async def engineio_connect(session: aiohttp.ClientSession, port: int) -> Publisher:
    """A raw Engine.IO v4 / Socket.IO v5 client: open, join the default namespace."""
    ws = await session.ws_connect(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive_str()
    if not opened.startswith("0"):
        raise RuntimeError(f"unexpected Engine.IO open packet {opened!r}")
    await ws.send_str("40")
    while not (await ws.receive_str()).startswith("40"):
        pass
    return Publisher(ws, prefix='42["pub",', suffix="]")


class NodeSocketIo(Peer):
    """Node socket.io 4 (seed 000's server)."""

    def version(self) -> str:
        return f"socket.io {_npm_version('socket.io')}"

    def start(self, port: int, workdir: Path) -> Server:
        return Server(self.name, ["node", str(PEERS_DIR / "sio_server.js"), str(port)], port,
                      log=workdir / f"{self.name}.log").ready()

    async def publisher(self, session: aiohttp.ClientSession, port: int) -> Publisher:
        return await engineio_connect(session, port)


class PythonSocketIo(Peer):
    """python-socketio 5 on aiohttp + uvloop."""

    def version(self) -> str:
        from importlib.metadata import version

        return f"python-socketio {version('python-socketio')}"

    def start(self, port: int, workdir: Path) -> Server:
        return Server(self.name, [sys.executable, str(PEERS_DIR / "pysio_server.py"), str(port)],
                      port, log=workdir / f"{self.name}.log").ready()

    async def publisher(self, session: aiohttp.ClientSession, port: int) -> Publisher:
        return await engineio_connect(session, port)


class AiohttpEngineIo(Peer):
    """A bare aiohttp WebSocket endpoint answering the Engine.IO open and ``40``: the
    floor under a Socket.IO server on aiohttp (connections scenario only)."""

    def version(self) -> str:
        from importlib.metadata import version

        return f"aiohttp {version('aiohttp')}"

    def start(self, port: int, workdir: Path) -> Server:
        return Server(self.name, [sys.executable, str(PEERS_DIR / "aiohttp_eio_server.py"),
                                  str(port)], port, log=workdir / f"{self.name}.log").ready()

    async def publisher(self, session: aiohttp.ClientSession, port: int) -> Publisher:
        raise NotImplementedError("aiohttp-eio relays nothing: connections scenario only")


class Nchan(Peer):
    """nginx + Nchan, one worker: the C pub/sub server, the fastest peer measured."""

    def version(self) -> str:
        import subprocess

        nchan = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"],
                               capture_output=True, text=True, check=False).stdout
        return f"nchan {nchan.split(':')[-1].split('+')[0]}"

    def start(self, port: int, workdir: Path) -> Server:
        prefix = workdir / "nchan"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = (PEERS_DIR / "nchan.conf").read_text()
        conf = conf.replace("@PORT@", str(port)).replace("@PREFIX@", str(prefix))
        (prefix / "nginx.conf").write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return Server(self.name, [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                  "-e", str(prefix / "error.log")],
                      port, log=workdir / f"{self.name}.log").ready()

    async def publisher(self, session: aiohttp.ClientSession, port: int) -> Publisher:
        return Publisher(await session.ws_connect(f"ws://127.0.0.1:{port}/pub/bench"))


# Join the default namespace ("40") right after the upgrade; ready on its answer.
class Tidings(Peer):
    """Tidings on its native ``/ws``: MessagePack, JWT-authenticated, channel ``bench``.

    The channel is in the default namespace ``""`` (history kept): each publication is
    stored (group commit) before it is delivered, the full code path. The per-connection
    rate limit is raised so that one publisher may send hundreds of frames a second.
    """

    CHANNEL = "bench"
    PER_USER = 5

    def version(self) -> str:
        from importlib.metadata import version

        return f"tidings {version('tidings')}"

    SETTINGS: dict[str, Any] = {"rate_limit": 100_000, "rate_burst": 100_000,
                                "max_connections_per_user": PER_USER}

    def prepare(self, workdir: Path) -> str:
        """A fresh SQLite store with the users; the subscribers' init lines. Its URL."""
        import asyncio
        import time as _time
        from concurrent.futures import ThreadPoolExecutor

        from bench import tidings_node

        url = f"sqlite:///{workdir}/fanout-{_time.time_ns()}.db"
        subscribers = int(self.extra.get("subscribers", 1000))
        count = (subscribers + self.PER_USER - 1) // self.PER_USER + 1
        with ThreadPoolExecutor(1) as pool:  # called from inside the bench's event loop
            users = pool.submit(asyncio.run, tidings_node.create_users(url, count)).result()
        self.extra["publisher_user"] = users[-1]
        sub = tidings_node.subscribe_frame(self.CHANNEL).hex()
        self.subscriber.init_lines = [
            f"b:{tidings_node.auth_frame(u, f'sub-{u}-{i}').hex()} b:{sub}"
            for u in users[:-1] for i in range(self.PER_USER)][:subscribers]
        self.subscriber.keepalive_hex = tidings_node.ping_frame().hex()
        return url

    def start(self, port: int, workdir: Path) -> Server:
        from bench import tidings_node

        return tidings_node.start(workdir, self.prepare(workdir), port, **self.SETTINGS)

    async def publisher(self, session: aiohttp.ClientSession, port: int) -> Publisher:
        from bench import tidings_node

        ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws")
        await ws.send_bytes(tidings_node.auth_frame(int(self.extra["publisher_user"]), "pub"))
        return TidingsPublisher(ws, self.CHANNEL)


class TidingsPublisher(Publisher):
    """Publishes with ``Publish`` frames; the acks are read and dropped."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, channel: str) -> None:
        super().__init__(ws)
        self._channel, self._seq = channel, 10

    async def send(self) -> None:
        from bench import tidings_node

        self._seq += 1
        await self.ws.send_bytes(tidings_node.publish_frame(self._channel, self._seq,
                                                            payload_text()))

    async def drain(self) -> None:
        """Read the acks; count the publications refused (``MsgError``: the node was
        delivering as fast as it could, ``WS_RATE_LIMITED``)."""
        from tidings.protocol.codec import decode_frame
        from tidings.protocol.codes import MsgType

        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY and \
                    decode_frame(msg.data).type == MsgType.ERROR:
                self.refused += 1


SIO_SUB = SubscriberSpec(path="/socket.io/?EIO=4&transport=websocket", ready_match="40{",
                         pong=("2", "3"), init_lines=["t:40"])

PEERS: dict[str, Peer] = {
    "nchan": Nchan("nchan", "nginx + Nchan (C)", SubscriberSpec(path="/sub/bench")),
    "node-ws": NodeWs("node-ws", "Node ws", SubscriberSpec(path="/")),
    "node-socketio": NodeSocketIo("node-socketio", "Node socket.io", SIO_SUB),
    "python-socketio": PythonSocketIo("python-socketio", "python-socketio (aiohttp)", SIO_SUB),
    "aiohttp-eio": AiohttpEngineIo("aiohttp-eio", "bare aiohttp, Engine.IO open + 40",
                                   SIO_SUB),
    "tidings": Tidings("tidings", "Tidings /ws (MessagePack)",
                       SubscriberSpec(path="/ws", ready_match="recovered")),
}


def python() -> str:
    """The interpreter that runs Tidings and the Python peers (the project's venv)."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable
