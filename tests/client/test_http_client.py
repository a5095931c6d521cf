"""The HTTP API client and the blocking client of tidings-client, against a real
``tidings serve`` (one process for the module)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.client.node import node  # noqa: F401  (the fixture)
from tests.support.nodes import NodeProcess
from tests.support.services import free_port
from tidings_client import (
    ChatMessage,
    ClientClosedError,
    ConnectionLostError,
    HttpClient,
    HttpError,
    PresenceChange,
    Publication,
    SyncClient,
)
from tidings_client.http_types import CreatedToken, HistoryPage, LoggedIn, TokenInfo
from tidings_client.sync import ws_url

PASSWORD = "correct horse battery"


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def _user(node: NodeProcess) -> tuple[HttpClient, int]:  # noqa: F811
    api = HttpClient(node.http_url)
    name = _name("u")
    registered = await api.register(name, PASSWORD)
    await api.login(name, PASSWORD)
    return api, registered.user_id


@pytest.fixture
async def fake() -> AsyncIterator[str]:
    """A server that is not Tidings: plain-text errors and answers of the wrong shape."""
    async def plain_error(request: web.Request) -> web.Response:
        return web.Response(status=502, text="Bad Gateway from a proxy")

    async def odd(request: web.Request) -> web.Response:
        return web.json_response({"unexpected": True})

    app = web.Application()
    app.router.add_post("/api/v1/auth/login", plain_error)
    app.router.add_get("/api/v1/tokens/current", odd)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_accounts_history_and_presence(node: NodeProcess) -> None:  # noqa: F811
    alice, alice_id = await _user(node)
    bob, bob_id = await _user(node)
    async with alice, bob:
        assert isinstance(alice.token, str) and alice.token
        page = await alice.history(bob_id)
        assert isinstance(page, HistoryPage) and page.messages == [] and page.next_before is None
        statuses = await alice.presence([alice_id, bob_id])
        # Bob is no peer of Alice's yet: his status is not hers to see.
        assert {p.user_id: p.status for p in statuses} == {alice_id: "offline",
                                                           bob_id: "unknown"}
        current = await alice.current_token()
        assert current.kind == "token" and current.user_id == alice_id


async def test_error_answers_carry_status_and_code(node: NodeProcess) -> None:  # noqa: F811
    async with HttpClient(node.http_url) as api:
        name = _name("e")
        await api.register(name, PASSWORD)
        with pytest.raises(HttpError) as taken:
            await api.register(name, PASSWORD)
        assert (taken.value.status, taken.value.code) == (409, "USERNAME_TAKEN")
        with pytest.raises(HttpError) as wrong:
            await api.login(name, "not the password")
        assert (wrong.value.status, wrong.value.code) == (401, "INVALID_CREDENTIALS")
        assert api.token is None
        with pytest.raises(HttpError) as anonymous:
            await api.history(1)
        assert (anonymous.value.status, anonymous.value.code) == (401, "UNAUTHORIZED")
        logged = await api.login(name, PASSWORD, device_id="cli")
        assert isinstance(logged, LoggedIn) and api.token == logged.token
        with pytest.raises(HttpError) as bad:
            await api.publish("bad channel name", 1)
        assert bad.value.status == 422 and "channel" in bad.value.message


async def test_unreachable_and_foreign_servers(fake: str) -> None:
    async with HttpClient(f"http://127.0.0.1:{free_port()}", timeout=5) as api:
        with pytest.raises(ConnectionLostError, match="POST /api/v1/auth/login"):
            await api.login("a", PASSWORD)
    async with HttpClient(fake, "token") as api:
        with pytest.raises(HttpError) as proxy:
            await api.login("a", PASSWORD)
        assert (proxy.value.status, proxy.value.code) == (502, "HTTP_502")
        assert "Bad Gateway from a proxy" in proxy.value.message
        with pytest.raises(HttpError) as odd:
            await api.current_token()
        assert odd.value.code == "BAD_ANSWER"


async def test_publish_and_channel_reads(node: NodeProcess) -> None:  # noqa: F811
    alice, alice_id = await _user(node)
    async with alice:
        channel = _name("room:h")
        first = await alice.publish(channel, {"n": 1}, type="note", idempotency_key="k1")
        again = await alice.publish(channel, {"n": 1}, type="note", idempotency_key="k1")
        assert (first.offset, first.duplicate) == (1, False)
        assert (again.offset, again.duplicate) == (1, True)
        await alice.publish(channel, [2])
        history = await alice.channel_history(channel, since=0, limit=1)
        assert history.offset == 2 and history.recovered and history.has_more
        (pub,) = history.publications
        assert (pub.type, pub.data, pub.info.user_id, pub.info.device_id) == (
            "note", {"n": 1}, alice_id, "http")
        rest = await alice.channel_history(channel, since=1)
        assert [p.data for p in rest.publications] == [[2]] and not rest.has_more
        with pytest.raises(HttpError) as not_admin:  # user:<id> channels are the admin's
            await alice.publish_to_users([alice_id], "ping")
        assert (not_admin.value.status, not_admin.value.code) == (403, "PERMISSION_DENIED")
        assert await alice.channel_presence(channel) == []  # nobody subscribed


async def test_token_management(node: NodeProcess) -> None:  # noqa: F811
    alice, alice_id = await _user(node)
    async with alice:
        made = await alice.create_token("bot", scopes=["publish:room:*"], expires_in=600,
                                        device_id="bot-1", device_info={"os": "linux"})
        assert isinstance(made, CreatedToken) and made.token and made.status == "active"
        assert (made.scopes, made.device_info, made.user_id) == (["publish:room:*"],
                                                                 {"os": "linux"}, alice_id)
        listed = await alice.tokens()
        assert made.id in {t.id for t in listed}
        assert all(isinstance(t, TokenInfo) for t in listed)
        renamed = await alice.update_token(made.id, name="bot2", expires_at=None,
                                           scopes=["publish:news:*"])
        assert (renamed.name, renamed.expires_at, renamed.scopes) == (
            "bot2", None, ["publish:news:*"])
        assert renamed.device_id == "bot-1"  # not given: unchanged
        cleared = await alice.update_token(made.id, device_id=None, device_info={})
        assert (cleared.device_id, cleared.device_info, cleared.name) == (None, {}, "bot2")
        assert (await alice.get_token(made.id)).name == "bot2"
        async with HttpClient(node.http_url, made.token) as bot:
            assert (await bot.current_token()).id == made.id
            assert await alice.revoke_tokens([made.id, 10**12]) == [made.id]
            with pytest.raises(HttpError) as revoked:
                await bot.current_token()
            assert revoked.value.status == 401
        second = await alice.create_token("short")
        assert await alice.revoke_token(second.id) == [second.id]
        assert (await alice.get_token(second.id)).status == "revoked"
        with pytest.raises(HttpError) as missing:
            await alice.get_token(10**12)
        assert (missing.value.status, missing.value.code) == (404, "TOKEN_NOT_FOUND")


def test_ws_url_follows_the_scheme() -> None:
    assert ws_url("http://h:1/") == "ws://h:1/ws"
    assert ws_url("https://example.org") == "wss://example.org/ws"


def test_blocking_client_chats_and_channels(node: NodeProcess) -> None:  # noqa: F811
    a, b = _name("sa"), _name("sb")
    with SyncClient(node.http_url, timeout=20) as alice, \
            SyncClient(node.http_url, timeout=20) as bob:
        with pytest.raises(ClientClosedError, match="log in first"):
            alice.connect()
        alice.register(a, PASSWORD)
        bob_id = bob.register(b, PASSWORD).user_id
        alice.login(a, PASSWORD)
        bob.login(b, PASSWORD, device_id="phone")
        with pytest.raises(ClientClosedError, match="connect"):
            alice.send_chat(bob_id, "too early")
        alice.connect(device_id="laptop", binary=False)
        alice.connect()  # again: no-op
        bob.connect(device_id="phone")
        own = bob.next_event(timeout=10)  # his own presence comes first
        assert own == PresenceChange(bob_id, "online")
        with pytest.raises(TimeoutError):
            bob.next_event(timeout=0.2)  # nothing more yet: the wait stays pending
        ack = alice.send_chat(bob_id, "hi bob")
        event = bob.next_event(timeout=10)
        assert isinstance(event, ChatMessage)
        assert (event.message_id, event.content) == (ack.message_id, "hi bob")
        messages, more = bob.sync(0)
        assert [m.content for m in messages] == ["hi bob"] and not more
        bob.ack(ack.message_id, "read")
        bob.set_presence("away")
        channel = _name("room:s")
        subscribed = alice.subscribe(channel, since=0)
        assert subscribed.channel == channel
        assert [(s.device_id) for s in bob.channel_presence(channel)] == ["laptop"]
        stored = bob.publish(channel, {"over": "ws"})
        pub = next(e for e in alice.events(timeout=10) if isinstance(e, Publication))
        assert (pub.offset, pub.data) == (stored.offset, {"over": "ws"})
        alice.unsubscribe(channel)
        bob.publish(channel, "after unsubscribing")
        assert [e for e in alice.events(timeout=0.5) if isinstance(e, Publication)] == []
    alice.close()  # again: no-op
    with pytest.raises(ClientClosedError):
        alice.tokens()
