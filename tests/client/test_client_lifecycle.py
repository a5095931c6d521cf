"""The client's connection life, proven against a real node (on SQLite and on PostgreSQL):
authentication refused, keepalive, network faults, reconnecting with backoff, closing.

Faults are injected around the real server (see test_client_behaviour.py): a TCP
:class:`~tests.support.proxy.Proxy`, ``server.drop_connections``, revoked tokens, and
:class:`~tests.client.tap.Tap` on the SDK's own transport. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import aiohttp
import pytest

from tests.client.helpers import (
    DROPPED,
    MakeClient,
    MakeReader,
    chats,
    eventually,
    has_content,
    is_a,
    loop_lag,
    revoke,
    two_users,
    without_presence,
)
from tests.client.tap import Tap
from tests.e2e.conftest import ServerFactory
from tests.support.proxy import Proxy
from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.client import (
    AuthError,
    Client,
    ClientClosedError,
    ConnectionLostError,
    Disconnected,
    Reconnected,
    ReconnectPolicy,
)
from tidings.protocol.codes import CloseCode, MsgType

# -- authentication ------------------------------------------------------------


async def test_refused_token_raises_auth_error_without_retrying(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    tap = Tap()
    client = make_client("tdg_" + "x" * 43, tap=tap)
    with pytest.raises(AuthError):
        await client.connect()
    assert [(r.type, r.body["success"]) for r in tap.received] == [(MsgType.AUTH_RSP, False)]
    await asyncio.sleep(0.2)  # several FAST_RECONNECT intervals
    assert len(tap.attempts) == 1
    assert await reader(client).rest() == []
    with pytest.raises(ClientClosedError):
        await client.send_chat(1, "x")
    with pytest.raises(ClientClosedError):
        await client.connect()


async def test_close_code_4401_stops_the_client_for_good(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (alice_id, alice_token), (bob_id, _) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, tap=tap)
    await alice.connect()
    events = reader(alice)
    tap.lose_chat_acks = 1  # keep a chat waiting
    sending = asyncio.create_task(alice.send_chat(bob_id, "too late"))
    await asyncio.wait_for(tap.lost_chat_acks.get(), 5)
    await revoke(server, alice_token)
    await server.drop_connections(alice_id, CloseCode.AUTH_FAILED)
    with pytest.raises(AuthError):
        await asyncio.wait_for(sending, 5)
    assert without_presence(await events.rest()) == [Disconnected(4401, DROPPED)]
    await asyncio.sleep(0.2)  # several FAST_RECONNECT intervals
    assert len(tap.attempts) == 1  # never tried again
    with pytest.raises(ClientClosedError) as info:
        await alice.ack(1)
    assert isinstance(info.value.__cause__, AuthError)
    assert not alice.connected


async def test_token_refused_on_reconnect_stops_the_client(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (alice_id, alice_token), (bob_id, _) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, tap=tap,
                        reconnect=ReconnectPolicy(initial_interval=0.1, max_interval=0.1))
    await alice.connect()
    events = reader(alice)
    await revoke(server, alice_token)  # e.g. it expired while the connection was up
    await server.drop_connections(alice_id)
    await events.until(is_a(Disconnected))
    pending = asyncio.create_task(alice.send_chat(bob_id, "never"))
    with pytest.raises(AuthError):
        await asyncio.wait_for(pending, 5)
    assert without_presence(await events.rest()) == []
    assert len(tap.attempts) == 2 and tap.frames(MsgType.CHAT) == []
    assert [r.body["success"] for r in tap.received
            if r.type == MsgType.AUTH_RSP] == [True, False]


# -- keepalive, network faults and reconnecting --------------------------------


async def test_server_close_code_reaches_the_application(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    alice_id, token = await server.quick_user()
    alice = make_client(token)
    await alice.connect()
    events = reader(alice)
    await server.drop_connections(alice_id, CloseCode.SLOW_CONSUMER)
    got = without_presence(await events.until(is_a(Reconnected)))
    assert got == [Disconnected(4413, DROPPED), Reconnected(1)]
    assert await alice.ping() >= 0


async def test_missing_pong_counts_as_a_dead_connection(
        server: RunningServer, proxy: Proxy, make_client: MakeClient,
        reader: MakeReader) -> None:
    _, token = await server.quick_user()
    alice = make_client(token, url=proxy.ws_url, ping_interval=0.05, ping_timeout=0.25)
    await alice.connect()
    events = reader(alice)
    assert await alice.ping() >= 0
    proxy.stall()  # the link goes dark: pings get no pong, and no close ever comes
    got = await events.until(is_a(Disconnected))
    assert got[-1] == Disconnected(1006, "no pong within ping_timeout")
    proxy.resume()
    got = await events.until(is_a(Reconnected))
    assert without_presence(got) == [Reconnected(1)]
    assert without_presence(await events.quiet(0.4)) == []  # pongs flow again: no more drops
    assert proxy.connects == 2


async def test_reconnect_waits_the_policy_backoff_between_refused_attempts(
        server: RunningServer, proxy: Proxy, make_client: MakeClient,
        reader: MakeReader) -> None:
    _, token = await server.quick_user()
    tap = Tap()
    policy = ReconnectPolicy(initial_interval=0.04, backoff_factor=2, max_interval=1)
    alice = make_client(token, url=proxy.ws_url, tap=tap, reconnect=policy)
    await alice.connect()
    events = reader(alice)
    proxy.refuse()
    async with loop_lag() as lag:
        cut_at = time.monotonic()
        assert proxy.cut() == 1  # abruptly: no close frame
        got = await events.until(is_a(Disconnected))
        assert got[-1].code == 1006  # type: ignore[union-attr]
        await eventually(lambda: len(tap.attempts) == 4)  # 3 refused attempts
        await proxy.accept()
        got = await events.until(is_a(Reconnected))
    assert got[-1] == Reconnected(4)
    times = [cut_at, *tap.attempts[1:]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, delay in zip(gaps, [0.04, 0.08, 0.16, 0.32], strict=True):
        # Once, in a full run, a gap overshot a fixed 150 ms margin: the loop was late.
        assert delay - 0.005 <= gap < delay + 0.15 + lag.worst, (gaps, delay, lag.worst)
    assert tap.connects == 2 and proxy.connects == 2
    assert await alice.ping() >= 0


async def test_loop_lag_measures_a_stalled_loop() -> None:
    async with loop_lag() as lag:
        await asyncio.sleep(0.02)
        time.sleep(0.2)  # the stall being measured
        await asyncio.sleep(0.02)
    assert 0.19 <= lag.worst < 1


async def test_gives_up_after_max_attempts(
        server: RunningServer, proxy: Proxy, make_client: MakeClient,
        reader: MakeReader) -> None:
    (_, alice_token), (bob_id, _) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, url=proxy.ws_url, tap=tap, reconnect=ReconnectPolicy(
        initial_interval=0.1, max_interval=0.1, max_attempts=2))
    await alice.connect()
    events = reader(alice)
    proxy.refuse()
    proxy.cut()
    await events.until(is_a(Disconnected))
    pending = asyncio.create_task(alice.send_chat(bob_id, "lost"))
    with pytest.raises(ConnectionLostError, match="after 2 attempts"):
        await asyncio.wait_for(pending, 5)
    assert without_presence(await events.rest()) == []
    assert len(tap.attempts) == 3 and tap.connects == 1
    with pytest.raises(ClientClosedError) as info:
        await alice.ping()
    assert isinstance(info.value.__cause__, ConnectionLostError)


async def test_first_connect_failure_is_raised_and_can_be_retried(
        server: RunningServer, proxy: Proxy, make_client: MakeClient) -> None:
    _, token = await server.quick_user()
    proxy.refuse()
    alice = make_client(token, url=proxy.ws_url)
    with pytest.raises(ConnectionLostError):
        await alice.connect()
    await proxy.accept()
    await alice.connect()
    assert await alice.ping() >= 0
    assert alice.connected


async def test_client_rides_out_a_server_restart_on_the_same_database(
        server: RunningServer, server_factory: ServerFactory, proxy: Proxy,
        make_client: MakeClient, reader: MakeReader) -> None:
    (alice_id, alice_token), (bob_id, bob_token) = await two_users(server)
    alice = make_client(alice_token, url=proxy.ws_url)
    bob = make_client(bob_token, url=proxy.ws_url)
    await alice.connect()
    await bob.connect()
    a_events, b_events = reader(alice), reader(bob)
    before = await alice.send_chat(bob_id, "before")
    await b_events.until(has_content("before"))

    await server.node.stop()
    got = await a_events.until(is_a(Disconnected))
    assert got[-1] == Disconnected(1001, "server shutting down; reconnect")
    sending = asyncio.create_task(alice.send_chat(bob_id, "during"))
    # Nothing listens behind the proxy: attempts are accepted and dropped, retried.
    await eventually(lambda: proxy.connects >= 6)
    assert not sending.done() and not alice.connected

    restarted = await server_factory()
    proxy.retarget(restarted.node.settings.host, restarted.node.port)
    ack = await asyncio.wait_for(sending, 5)
    assert ack.message_id > before.message_id
    got = await a_events.until(is_a(Reconnected))
    assert got[-1].attempts > 1  # type: ignore[union-attr]
    await b_events.until(has_content("during"))
    assert [m.content for m in chats(b_events.seen)] == ["before", "during"]
    assert {c.user_id for c in restarted.node.gateway.connections} == {alice_id, bob_id}


# -- closing -------------------------------------------------------------------


async def test_close_while_waiting_to_reconnect_fails_pending_calls_and_ends_events(
        server: RunningServer, make_client: MakeClient, reader: MakeReader) -> None:
    (alice_id, alice_token), (bob_id, _) = await two_users(server)
    alice = make_client(alice_token, reconnect=ReconnectPolicy(initial_interval=30,
                                                               max_interval=30))
    await alice.connect()
    events = reader(alice)
    await server.drop_connections(alice_id)
    await events.until(is_a(Disconnected))
    pending = asyncio.create_task(alice.send_chat(bob_id, "never sent"))
    await asyncio.sleep(0.05)
    assert not pending.done()
    await asyncio.wait_for(alice.close(), 2)
    with pytest.raises(ClientClosedError):
        await pending
    assert without_presence(await events.rest()) == []
    assert not alice.connected


async def test_close_during_a_hanging_reconnect_attempt_returns_at_once(
        server: RunningServer, proxy: Proxy, make_client: MakeClient,
        reader: MakeReader) -> None:
    (_, alice_token), (bob_id, _) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, url=proxy.ws_url, tap=tap, connect_timeout=30)
    await alice.connect()
    events = reader(alice)
    proxy.stall()
    proxy.cut()
    await events.until(is_a(Disconnected))
    await eventually(lambda: len(tap.attempts) == 2)  # its handshake goes nowhere
    pending = asyncio.create_task(alice.send_chat(bob_id, "never sent"))
    await asyncio.sleep(0.05)
    assert not pending.done() and tap.connects == 1
    await asyncio.wait_for(alice.close(), 2)
    with pytest.raises(ClientClosedError):
        await pending
    assert without_presence(await events.rest()) == []


@pytest.mark.server_settings(max_connections_per_user=1)
async def test_close_stops_a_client_refused_for_too_many_connections(
        server: RunningServer, proxy: Proxy, make_client: MakeClient,
        reader: MakeReader, http: aiohttp.ClientSession) -> None:
    alice_id, token = await server.quick_user()
    tap = Tap()
    alice = make_client(token, url=proxy.ws_url, tap=tap, reconnect=ReconnectPolicy(
        initial_interval=0.02, max_interval=0.02, jitter=0))
    await alice.connect()
    events = reader(alice)
    proxy.refuse()
    proxy.cut()
    await events.until(is_a(Disconnected))
    await eventually(lambda: server.node.hub.connections(alice_id) == [])
    other = await Wire.ready(http, server.ws_url, token, "other")  # takes the only slot
    await proxy.accept()

    def refusals() -> float:
        return server.node.service.metrics.registry.get_sample_value(
            "tidings_errors_total", {"code": "WS_TOO_MANY_CONNECTIONS"}) or 0.0

    await eventually(lambda: refusals() >= 3)  # refused by the server, again and again
    assert not alice.connected
    await asyncio.wait_for(alice.close(), 2)
    tried = len(tap.attempts)
    refused = refusals()
    await asyncio.sleep(0.3)  # ~15 backoff periods
    assert (len(tap.attempts), refusals()) == (tried, refused)
    await other.close()


async def test_close_during_the_first_connect_leaves_nothing_open(
        server: RunningServer, proxy: Proxy, make_client: MakeClient) -> None:
    alice_id, token = await server.quick_user()
    tap = Tap()
    alice = make_client(token, url=proxy.ws_url, tap=tap)
    proxy.stall()  # the first handshake hangs
    connecting = asyncio.create_task(alice.connect())
    await eventually(lambda: len(tap.attempts) == 1)
    await asyncio.wait_for(alice.close(), 2)
    proxy.resume()
    with contextlib.suppress(ClientClosedError):  # raising it would be fine; hanging on is not
        await asyncio.wait_for(connecting, 5)
    await asyncio.sleep(0.2)
    assert not alice.connected
    assert server.node.hub.connections(alice_id) == []


async def test_calls_before_connect_are_refused() -> None:
    client = Client("ws://127.0.0.1:9/ws", "token")
    with pytest.raises(ClientClosedError, match="connect"):
        await client.send_chat(2, "x")
    await client.close()


async def test_a_rate_limited_ping_is_an_answer_not_a_dead_connection(
        server_factory: ServerFactory, make_client: MakeClient, reader: MakeReader) -> None:
    """Pings beyond the frame rate limit are answered ``WS_RATE_LIMITED``: the server is
    there, so the keepalive keeps the connection (it used to drop it as if no pong came)."""
    limited = await server_factory(rate_limit=2, rate_burst=2)
    _, token = await limited.quick_user()
    tap = Tap()
    alice = make_client(token, url=limited.ws_url, tap=tap, ping_interval=0.05,
                        ping_timeout=1.0)
    await alice.connect()
    events = reader(alice)
    assert [e for e in await events.quiet(1.0) if isinstance(e, Disconnected)] == []
    refused = [r for r in tap.received
               if r.type == MsgType.ERROR and r.body.get("code") == "WS_RATE_LIMITED"]
    assert len(refused) >= 5  # the keepalive did run into the limit
    assert tap.connects == 1


async def test_registry_unavailable_at_reconnect_is_retried_not_terminal(
        server: RunningServer, make_client: MakeClient) -> None:
    """A node that cannot reach its cluster registry (a partition) refuses the auth with
    WS_INTERNAL_ERROR: the client retries with backoff instead of giving up for good."""
    (alice_id, alice_token), (bob_id, _) = await two_users(server)
    tap = Tap()
    alice = make_client(alice_token, tap=tap,
                        reconnect=ReconnectPolicy(initial_interval=0.1, max_interval=0.2))
    await alice.connect()
    registry = server.node.registry
    real_claim = registry.claim
    refusals = 0

    async def claim_once_unavailable(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal refusals
        if refusals == 0:
            refusals += 1
            raise OSError("registry unreachable")
        return await real_claim(*args, **kwargs)

    registry.claim = claim_once_unavailable  # type: ignore[method-assign]
    try:
        await server.drop_connections(alice_id, CloseCode.GOING_AWAY)
        await eventually(lambda: refusals == 1 and alice.connected and len(tap.attempts) >= 3,
                         10)  # first connect, the refused one, the one that worked
        ack = await asyncio.wait_for(alice.send_chat(bob_id, "still here"), 5)
        assert ack.message_id > 0
    finally:
        registry.claim = real_claim  # type: ignore[method-assign]
