"""Graceful shutdown of a real ``tidings serve`` process on SIGTERM (tidings/shutdown.py).

Under load, SIGTERM must: stop accepting connections, answer every chat it took,
close every connection with 1001 "server shutting down; reconnect", exit 0
within ``shutdown_timeout`` — and, proved by the delivery ledger after a
restart, lose nothing acknowledged.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from types import SimpleNamespace

import pytest

from tests.chaos.ledger import Ledger
from tests.chaos.node import NodeProcess
from tests.chaos.traffic import Traffic, create_accounts
from tests.hostile.rawws import RawSocket
from tidings.client import Client
from tidings.protocol.codes import CloseCode
from tidings.shutdown import SHUTDOWN_REASON

pytestmark = pytest.mark.slow


async def _chatting(url: str, node: NodeProcess, traffic: Traffic) -> None:
    """Start the node; 6 users with 2 devices each chat for 1.5 s (and go on)."""
    accounts = await create_accounts(url, 6)
    await asyncio.to_thread(node.start)
    traffic.url = node.ws_url
    await traffic.connect(accounts, 2)
    traffic.start_sending([a.user_id for a in accounts])
    await asyncio.sleep(1.5)


def _refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_sigterm_under_load_drains_closes_1001_and_loses_nothing(store, tmp_path,
                                                                       request):
    if store == "sqlite":
        url = f"sqlite:///{tmp_path / 'drain.db'}"
    else:
        pg = request.getfixturevalue("postgres_server")
        url = pg.create_database(f"drain_{secrets.token_hex(6)}")
    node = NodeProcess(url, shutdown_timeout=10)
    ledger = Ledger()
    traffic = Traffic("", ledger, pause=0.0)  # no pause: chats are in flight at SIGTERM
    try:
        await _chatting(url, node, traffic)
        acked_before = ledger.acked()
        connected = {name for name, c in traffic.clients.items() if c.connected}
        elapsed = await asyncio.to_thread(node.terminate)
        assert node.exit_code == 0, node.log_tail()
        assert elapsed < 10, elapsed
        log = node.log_text()
        assert "SIGTERM received: shutting down" in log, log
        assert "draining: done" in log and "(clean)" in log, log
        assert " ERROR " not in log, log
        # Every device connected at SIGTERM (on a loaded machine one may be reconnecting
        # after a ping timeout) was told to go away, with the documented code and reason.
        told = {d for d, code, why in traffic.disconnects
                if code == CloseCode.GOING_AWAY and why == SHUTDOWN_REASON}
        assert len(connected) >= len(traffic.clients) - 2, connected
        assert connected <= told, traffic.disconnects
        await asyncio.to_thread(node.start)  # the clients reconnect by themselves
        await asyncio.sleep(1.0)
        await traffic.finish_sending()
        await traffic.settle()
        figures = ledger.check()
        assert figures.acked > acked_before > 50, figures
        assert figures.lost == 0 and figures.expected_deliveries >= figures.acked
    finally:
        await traffic.close()
        await asyncio.to_thread(node.close)


async def test_sigterm_stores_the_delivery_acks_sent_while_it_drains(tmp_path):
    """The drain still takes MsgAck: the pushes it flushes are acknowledged and their
    cursors stored before it closes, so the restarted node sends nothing again.

    Without that, every message pushed in the last moments before SIGTERM (and those
    the flush commits) is replayed after the reconnect: ~20-30 re-deliveries here."""
    url = f"sqlite:///{tmp_path / 'acks.db'}"
    # With no pause the devices pass 50 frames/s: an ack refused by the limiter just
    # before SIGTERM would not be sent again, and that is not what this test is about.
    node = NodeProcess(url, shutdown_timeout=10, rate_limit=1000, rate_burst=1000)
    ledger = Ledger()
    traffic = Traffic("", ledger, pause=0.0)  # pushes in flight at SIGTERM
    try:
        await _chatting(url, node, traffic)
        await asyncio.to_thread(node.terminate)
        assert node.exit_code == 0, node.log_tail()
        log = node.log_text()
        assert "(clean)" in log, log
        assert "delivery acks stored; 0 connections had not acknowledged everything" in log, log
        pushed = ledger.on_wire_count()  # before the restart
        await asyncio.to_thread(node.start)
        await asyncio.sleep(1.0)
        await traffic.finish_sending()
        await traffic.settle()
        figures = ledger.check()
        assert pushed > 100, pushed
        assert figures.connections >= 2 * 12, figures  # every device came back
        assert figures.redelivered == 0, figures
    finally:
        await traffic.close()
        await asyncio.to_thread(node.close)


@pytest.mark.parametrize("queue_bytes", [64 << 20, None], ids=["outbox-holds", "closed-slow"])
async def test_sigterm_with_a_stuck_client_stops_accepting_and_exits_within_the_timeout(
        tmp_path, queue_bytes):
    """A client that never reads holds its outbox (or, at the default send_queue_bytes,
    is being closed as a slow consumer with its close frame stuck behind the flood): the
    drain gives up at the deadline, meanwhile the port refuses new connections, and the
    exit code is still 0 (the stuck socket is aborted, not left to flush forever)."""
    url = f"sqlite:///{tmp_path / 'stuck.db'}"
    # write_timeout far above shutdown_timeout: only the drain deadline can end this.
    extra = {} if queue_bytes is None else {"send_queue_bytes": queue_bytes}
    node = NodeProcess(url, shutdown_timeout=4, write_timeout=120, rate_limit=1000,
                       rate_burst=1000, **extra)
    stuck = None
    try:
        (victim, sender_account) = await create_accounts(url, 2)
        await asyncio.to_thread(node.start)
        target = SimpleNamespace(node=SimpleNamespace(settings=SimpleNamespace(
            host="127.0.0.1"), port=node.port))
        stuck = await RawSocket.upgrade(target, rcvbuf=4096)
        await stuck.auth(victim.token)
        stuck.writer.transport.pause_reading()  # the kernel buffers fill, then writes block
        async with Client(node.ws_url, sender_account.token) as sender:
            for n in range(40):  # 8 MB: more than the socket buffers hold
                await sender.send_chat(victim.user_id, f"{n}" + "z" * 200_000)
            started = time.monotonic()
            terminating = asyncio.ensure_future(asyncio.to_thread(node.terminate))
            await asyncio.sleep(1.0)
            assert _refuses_connections(node.port), "still accepting while draining"
            assert not terminating.done(), "did not wait for the stuck client's outbox"
            elapsed = await terminating
        assert node.exit_code == 0, node.log_tail()
        assert 2.0 < elapsed < 4.0 + 2.0, elapsed  # the timeout, plus interpreter exit
        assert time.monotonic() - started < 8
        log = node.log_text()
        if queue_bytes is not None:  # the flood fits the outbox: the drain waits on it
            assert "outboxes not done within shutdown_timeout" in log, log
        assert "(timed out)" in log
    finally:
        if stuck is not None:
            await stuck.aclose()
        await asyncio.to_thread(node.close)
