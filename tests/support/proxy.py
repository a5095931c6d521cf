"""A TCP proxy on 127.0.0.1 in front of a real node, with switches for network faults.

Tests point a client at :attr:`Proxy.ws_url` instead of the node, then break
the link underneath it without touching either end:

* :meth:`stall` stops forwarding in both directions (a half-open or
  blackholed link: bytes sent get no answer) until :meth:`resume`, which
  delivers what was held, as TCP would once the link is back;
* :meth:`cut` drops every proxied connection abruptly: no WebSocket close
  frame, the client sees the socket end (close code 1006);
* :meth:`refuse` closes the listening socket, so new connections are refused,
  until :meth:`accept` listens on the same port again;
* :meth:`retarget` sends new connections to another node (a restarted server
  listens on a new port; the client's URL stays the proxy's);
* :meth:`block` partitions the link: nothing gets through either way, open
  connections stay open (no RST, no FIN, just silence) and new ones are accepted
  but reach the target only after :meth:`heal`, which delivers what was held, as
  TCP's retransmissions would once the network is back;
* :meth:`half_open` makes every open connection half-open: the target's side is
  closed, the client's side stays open and silent (what a client sees when the
  server's host rebooted or a NAT forgot the flow); new connections work;
* :meth:`delay` holds every chunk ``seconds`` before forwarding it (in order),
  until :meth:`heal`.

A connection accepted while the target is down is closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket


class _Link:
    """One proxied connection: the client's socket and the node's."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.tasks: list[asyncio.Task[None]] = []
        self.dead = False  # half-open: the target's side is gone, the client's is silent

    def half_open(self) -> None:
        """Close the target's side without a word to the client; drop what it sends."""
        self.dead = True
        self.upstream.transport.abort()

    def abort(self) -> None:
        """Drop both sockets at once, unsent bytes included."""
        for writer in (self.client, self.upstream):
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()

    def close(self) -> None:
        """Close both sockets once what was written is sent."""
        for writer in (self.client, self.upstream):
            writer.close()


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connects = 0  # connections accepted (refused ones never get here)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.latency = 0.0  # delay(): seconds each chunk is held
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> Proxy:
        """Listen on a free port (the first time) or on the same port again."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=sock)
        return self

    async def aclose(self) -> None:
        """Stop listening and drop every connection."""
        self.refuse()
        self._flowing.set()
        self.cut()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    # switches

    def stall(self) -> None:
        """Stop forwarding both ways (connections stay open, bytes are held)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, starting with what was held."""
        self._flowing.set()

    def cut(self) -> int:
        """Abort every proxied connection (no close frame); return how many."""
        links, self._links = self._links, set()
        for link in links:
            link.abort()
        return len(links)

    def refuse(self) -> None:
        """Close the listening socket: connecting now fails (connection refused).

        Connections already proxied are left alone (see :meth:`cut`)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def accept(self) -> None:
        """Listen again on the same port after :meth:`refuse`."""
        if self._server is None:
            await self.start()

    def block(self) -> None:
        """Partition the link until :meth:`heal` (see the module docstring): like
        :meth:`stall`, and new connections wait too."""
        self._flowing.clear()

    def half_open(self) -> int:
        """Make every open connection half-open (see the module docstring); return how
        many. New connections are forwarded as usual."""
        links = [link for link in self._links if not link.dead]
        for link in links:
            link.half_open()
        return len(links)

    def delay(self, seconds: float) -> None:
        """Hold every chunk, each way, ``seconds`` before forwarding it."""
        self.latency = seconds

    def heal(self) -> None:
        """End :meth:`block`, :meth:`delay` and :meth:`stall`."""
        self.latency = 0.0
        self._flowing.set()

    def retarget(self, host: str, port: int) -> None:
        """Send new connections to another address."""
        self.target = (host, port)

    # forwarding

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connects += 1
        try:
            await self._flowing.wait()  # partitioned: the connect hangs until the heal
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()  # the node is down: the client's handshake fails
                return
            link = _Link(writer, up_writer)
            self._links.add(link)
            link.tasks = [asyncio.create_task(self._pump(reader, up_writer, link)),
                          asyncio.create_task(self._pump(up_reader, writer, link))]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
            if link.dead:  # half-open: the client's side stays open, unanswered,
                await asyncio.gather(*link.tasks, return_exceptions=True)  # until it ends
                self._links.discard(link)
                writer.transport.abort()
                return
            # One side ended (its FIN was passed on): let the other finish, then close.
            await asyncio.wait(link.tasks, timeout=1.0)
            self._links.discard(link)
            link.close()
            for t in link.tasks:
                t.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # aclose(): end quietly (asyncio logs a handler task that ends cancelled)
        finally:
            self._handlers.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    link: _Link) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                await self._flowing.wait()
                if self.latency:
                    await asyncio.sleep(self.latency)
                if link.dead:
                    continue
                dst.write(data)
                await dst.drain()
            await self._flowing.wait()
            if link.dead:
                return
            if dst.can_write_eof():
                dst.write_eof()
