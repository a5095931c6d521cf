"""Graceful shutdown: drain a node so that a restart or a deploy loses nothing and
strands nobody.

On SIGTERM (or SIGINT) ``tidings serve`` drains, each step bounded by what is
left of ``shutdown_timeout``:

1. **Stop listening.** New connections are refused at once, so a client's
   reconnect goes to another node (or retries with backoff until this one is
   back) instead of landing on a node about to close it.
2. **Stop taking frames** — all but delivery acks (``MsgAck``). Chats, syncs,
   publications and the rest that arrive from now on are not processed (no
   answer); a client re-sends its unacknowledged chats, with their ``seq``, after
   it reconnects, and the store keeps each once.
3. **Flush.** Wait for the frames being handled to finish, then commit what the
   group-commit log holds and store pending acks: every chat the node took gets
   its ``ChatAck``.
4. **Drain outboxes.** Wait until each connection has been sent what is queued
   for it (acks, pushes, receipts).
5. **Take the last delivery acks.** Give the devices that acknowledge
   deliveries (they did on this connection) up to :data:`ACK_WAIT` seconds to
   acknowledge everything pushed to them, then store those acks (their cursors):
   after the reconnect the node does not send those messages again. A client
   that never acks costs no wait.
6. **Close** every connection with 1001 (going away) and the reason
   ``server shutting down; reconnect``, and wait for the closing handshakes.

If the time runs out, whatever remains is closed at once. Nothing acknowledged
can be lost either way: a ``ChatAck`` is only ever sent after its commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiohttp import web

from tidings.gateway.connection import Connection
from tidings.gateway.websocket import Gateway
from tidings.protocol.codes import CloseCode

log = logging.getLogger(__name__)

SHUTDOWN_REASON = "server shutting down; reconnect"

ACK_WAIT = 1.0
"""Seconds the drain waits, at most, for devices to acknowledge the last pushes."""


async def drain(runner: web.AppRunner | None, gateway: Gateway,
                flush: Sequence[Callable[[], Awaitable[object]]], within: float) -> bool:
    """Drain the node as the module doc says; True if it finished within ``within`` seconds.

    ``flush`` are the commit logs' close methods (chats, channel publications): each
    commits what it holds, so that every request taken is answered before the close.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    if runner is not None:
        for site in list(runner.sites):
            await site.stop()
    gateway.stop_taking_frames()
    conns = list(gateway.connections)
    log.info("draining: stopped listening; flushing %d connections (at most %.0f s)",
             len(conns), within)
    steps: list[tuple[str, Awaitable[object]]] = [
        ("frames in progress", gateway.idle()),
        # Shielded: a commit cut short by the deadline would only be retried by clients.
        ("commit logs and acks", asyncio.shield(_all_in_order(flush))),
        ("outboxes", _all(c.drain() for c in conns)),
        ("delivery acks", _last_acks(gateway)),
    ]
    finished = True
    for name, step in steps:
        left = deadline - loop.time()
        try:
            async with asyncio.timeout(max(left, 0.0)):
                await step
            await asyncio.sleep(0)  # let commit callbacks queue their ChatAcks
        except TimeoutError:
            log.warning("draining: %s not done within shutdown_timeout; closing now", name)
            finished = False
            break
    if not finished:  # close the remaining awaitables so none is left unawaited
        for _, step in steps:
            if asyncio.iscoroutine(step):
                step.close()
            elif isinstance(step, asyncio.Future) and not step.done():
                step.add_done_callback(_consume)
    conns = list(gateway.connections)
    if conns:
        # Each connection is closed once what is queued for it is written: closing one
        # announces its user offline to the others, and a close that cut a write in
        # progress would have to drop the TCP connection without a close frame.
        closing = {asyncio.ensure_future(_close_when_written(c)): c for c in conns}
        _, stuck = await asyncio.wait(closing, timeout=max(deadline - loop.time(), 0.2))
        for future in stuck:  # a peer that does not read cannot take a close frame
            closing[future].abort()
        if stuck:
            finished = False
            log.warning("draining: %d connections did not close in time; dropped",
                        len(stuck))
    log.info("draining: done in %.1f s (%s)", within - (deadline - loop.time()),
             "clean" if finished else "timed out")
    return finished


async def _last_acks(gateway: Gateway) -> None:
    """Wait (up to ACK_WAIT) until every device acknowledged what it was sent; store
    the acks taken meanwhile."""
    service = gateway.service
    loop = asyncio.get_running_loop()
    until = loop.time() + ACK_WAIT

    def unconfirmed() -> int:
        return sum(1 for c in gateway.connections
                   if c.user_id and not c.closed and service.awaits_ack(c))

    left = unconfirmed()
    for _ in range(int(ACK_WAIT / 0.02)):  # polls: one ack per device may be enough
        if not left or loop.time() >= until:
            break
        await asyncio.sleep(0.02)
        left = unconfirmed()
    # Shielded: a cursor write cut short would only mean re-deliveries, but let it land.
    await asyncio.shield(service.acks_stored())
    log.info("draining: delivery acks stored; %d connections had not acknowledged "
             "everything", left)


async def _close_when_written(conn: Connection) -> None:
    await conn.drain()
    reader = conn.reader
    if reader is not None and not reader.done():
        # The reading task closes, as on a timeout (Gateway._watch): a close racing its
        # pending receive() makes aiohttp drop TCP at once, with the device's last frames
        # unread (so with a reset), and a device still writing then sees 1006, not 1001.
        conn.stop_reader(CloseCode.GOING_AWAY, SHUTDOWN_REASON)
        await asyncio.wait([reader])  # it ends once the connection is closed and settled
    else:
        conn.close(CloseCode.GOING_AWAY, SHUTDOWN_REASON)
    await conn.wait_closed()


def _consume(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "exception was never retrieved" noise


async def _all_in_order(steps: Sequence[Callable[[], Awaitable[object]]]) -> None:
    for step in steps:
        await step()


async def _all(waits: Iterable[Awaitable[object]]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
