"""The pages, their assets, the admin overview and the user directory, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.server import RunningServer
from tidings.client import Client
from tidings.config import load_settings
from tidings.metrics import Metrics
from tidings.web.traffic import TrafficMonitor, quantile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningServer]:
    server = await RunningServer(f"sqlite:///{tmp_path / 'web.db'}", admin_users=["root"]).start()
    try:
        yield server
    finally:
        await server.stop()


async def get(node: RunningServer, path: str, token: str | None = None):
    assert node.http is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await node.http.get(node.http_url + path, headers=headers)


async def test_pages_are_html_with_a_strict_content_security_policy(node):
    for path in ("/", "/demo/chat", "/demo/editing"):  # the desk map: test_desk_map_app.py
        async with await get(node, path) as r:
            assert r.status == 200
            assert r.content_type == "text/html"
            policy = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert '<script type="module" src="/static/' in await r.text()


async def test_the_javascript_client_is_served_from_its_one_source(node):
    # Every module of the npm package's sources, as the pages' imports of
    # /static/tidings.js fetch them: a new module without its link here fails.
    modules = sorted((ROOT / "clients/js/src").glob("*.js"))
    assert {m.name for m in modules} >= {"tidings.js", "tidings-protocol.js",
                                         "tidings-connection.js", "tidings-editing.js"}
    for module in modules:
        async with await get(node, "/static/" + module.name) as r:
            assert r.status == 200, module.name
            assert r.content_type == "text/javascript"
            assert await r.read() == module.read_bytes(), module.name
    for name in ("chat.js", "dashboard.js", "editing.js", "common.js", "style.css",
                 "favicon.svg"):
        async with await get(node, "/static/" + name) as r:
            assert r.status == 200, name


@pytest.mark.parametrize("path", ["/static/nothing.js", "/static/..%2fpages.py",
                                  "/static/.hidden", "/static/%2e%2e%2fadmin.py",
                                  "/static/Chat.JS"])
async def test_only_plain_asset_names_are_served(node, path):
    async with await get(node, path) as r:
        assert r.status == 404


async def test_admin_overview_needs_an_admin(node):
    async with await get(node, "/api/v1/admin/overview") as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "UNAUTHORIZED"
    _, token = await node.new_user("someone")
    async with await get(node, "/api/v1/admin/overview", token) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "ADMIN_REQUIRED"


async def test_admin_overview_reports_the_running_node(node):
    _, root = await node.new_user("root")
    _, alice_token = await node.quick_user()
    bob_id, bob_token = await node.quick_user()
    async with Client(node.ws_url, alice_token) as alice, Client(node.ws_url, bob_token):
        for i in range(3):
            await alice.send_chat(to=bob_id, content=f"m{i}")
        node.node.traffic.sample()
        async with await get(node, "/api/v1/admin/overview", root) as r:
            assert r.status == 200
            data = await r.json()
    assert data["admin"] == "root"
    assert data["connections"] == 2 and data["users_online"] == 2
    assert data["totals"]["messages_in"] == 3 and data["totals"]["messages_stored"] == 3
    assert data["series"][-1]["connections"] == 2
    assert data["series"][-1]["messages_in"] > 0
    latency = data["ack_latency_ms"]
    assert latency["samples"] == 3 and 0 < latency["p50"] <= latency["p99"]
    assert data["store"]["backend"] == "sqlite" and data["store"]["status"] == "ok"
    assert data["bus"] == {"backend": "memory", "status": "ok"}
    assert data["nodes"][0]["url"] == node.http_url and data["nodes"][0]["self"]
    assert data["node"]["url"] == node.http_url


async def test_admin_overview_lists_channels_with_their_counts(node):
    _, root = await node.new_user("root")
    _, token = await node.quick_user()
    async with Client(node.ws_url, token) as client:
        await client.subscribe("room:busy")
        await client.subscribe("room:quiet")
        for i in range(3):
            await client.publish("room:busy", {"n": i})
        await client.publish("news", "one")
        async with await get(node, "/api/v1/admin/overview", root) as r:
            channels = (await r.json())["channels"]
    assert channels == [
        {"channel": "room:busy", "subscribers": 1, "publications": 3, "retained": 3},
        {"channel": "room:quiet", "subscribers": 1, "publications": 0, "retained": 0},
        {"channel": "news", "subscribers": 0, "publications": 1, "retained": 1}]


async def test_a_token_with_the_admin_scope_may_read_the_overview(node):
    user_id, _ = await node.quick_user()
    token, _ = await node.node.service.auth.issue(user_id, scopes=("admin",))
    async with await get(node, "/api/v1/admin/overview", token) as r:
        assert r.status == 200
    scoped, _ = await node.node.service.auth.issue(user_id, scopes=("subscribe:*",))
    async with await get(node, "/api/v1/admin/overview", scoped) as r:
        assert r.status == 403


async def test_admin_overview_reports_a_failing_store(node):
    _, root = await node.new_user("root")

    async def broken() -> None:
        raise OSError("disk on fire")

    node.node.store.ping = broken  # type: ignore[method-assign]
    async with await get(node, "/api/v1/admin/overview", root) as r:
        data = await r.json()
    assert data["store"] == {"backend": "sqlite", "status": "error", "detail": "disk on fire"}


async def test_user_directory_by_name_and_by_ids(node):
    alice_id, token = await node.new_user("alice")
    bob_id, _ = await node.new_user("bob")
    async with await get(node, "/api/v1/users/bob", token) as r:
        assert r.status == 200
        assert await r.json() == {"user_id": bob_id, "username": "bob"}
    async with await get(node, "/api/v1/users/nobody", token) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "USER_NOT_FOUND"
    async with await get(node, "/api/v1/users/" + "x" * 65, token) as r:
        assert r.status == 404
    async with await get(node, f"/api/v1/users?ids={bob_id},{alice_id},{bob_id},999", token) as r:
        assert r.status == 200
        assert (await r.json())["users"] == [{"user_id": bob_id, "username": "bob"},
                                             {"user_id": alice_id, "username": "alice"}]
    for query in ("", "?ids=", "?ids=1,x", "?ids=" + ",".join(["1"] * 101), "?ids=\u0661"):
        async with await get(node, "/api/v1/users" + query, token) as r:
            assert r.status == 400, query
            assert (await r.json())["error"]["code"] == "BAD_PARAMETER"
    async with await get(node, "/api/v1/users/bob") as r:
        assert r.status == 401


def test_traffic_rates_and_quantiles():
    metrics = Metrics()
    traffic = TrafficMonitor(metrics)
    metrics.messages_in.inc(10)
    metrics.messages_out.inc(4)
    metrics.frame_in(2)
    metrics.connections.inc(3)
    sample = traffic.sample()
    assert sample.messages_in > 0 and sample.messages_out > 0 and sample.frames_in > 0
    assert sample.connections == 3
    assert traffic.sample().messages_in == 0  # nothing new since
    assert traffic.latency().p50 is None
    for ms in range(1, 101):
        metrics.chat_acked(ms / 1000)
    latency = traffic.latency()
    assert (latency.p50, latency.p99, latency.samples) == (50.0, 99.0, 100)
    assert quantile([1.0], 0.99) == 1.0 and quantile([1.0, 2.0], 0.5) == 1.0


def test_admin_users_come_from_env_as_a_list():
    settings = load_settings(environ={"TIDINGS_ADMIN_USERS": "root, ops"})
    assert settings.admin_users == ["root", "ops"]
