"""The broker's HTTP API: publish, batch, history, presence, stats, validation."""

from __future__ import annotations

import asyncio

from tests.channels.conftest import api
from tests.channels.helpers import Channels
from tidings.store import now_ms
from tidings.store.channels import utc_day


async def test_publish_validation_errors_are_clear_4xx(server, http, user):
    _, token = await user()
    cases = [
        ({"channel": "room:a"}, 422, "INVALID_BODY", "data"),
        ({"data": 1}, 422, "INVALID_BODY", "either channel or user_ids"),
        ({"channel": "room:a", "user_ids": [1], "data": 1}, 422, "INVALID_BODY", "either"),
        ({"channel": "room a", "data": 1}, 422, "INVALID_BODY", "(at channel)"),
        ({"channel": "room:a", "data": 1, "type": ""}, 422, "INVALID_BODY", "(at type)"),
        ({"channel": "room:a", "data": 1, "extra": 2}, 422, "INVALID_BODY", "extra"),
        ({"channel": "nope:a", "data": 1}, 404, "UNKNOWN_CHANNEL", "no namespace 'nope'"),
        ({"channel": "room:a", "data": "x" * 70000}, 413, "PUBLICATION_TOO_LARGE", "limit"),
        ({"channel": "broadcast:all", "data": 1}, 403, "PERMISSION_DENIED", "admin scope"),
    ]
    for body, status, code, fragment in cases:
        got, answer = await api(http, server, "POST", "/api/v1/publish", token, json=body)
        assert (got, answer["error"]["code"]) == (status, code), (body, answer)
        assert fragment in answer["error"]["message"], answer
    async with http.post(server.http_url + "/api/v1/publish", data=b"{nope",
                         headers={"X-API-Token": token}) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "BAD_JSON"
    got, answer = await api(http, server, "POST", "/api/v1/publish", None,
                            json={"channel": "room:a", "data": 1})
    assert got == 401 and "X-API-Token" in answer["error"]["message"]


async def test_x_api_token_works_like_bearer(server, http, user):
    _, token = await user()
    status, body = await api(http, server, "POST", "/api/v1/publish", None,
                             headers={"X-API-Token": token},
                             json={"channel": "room:x", "data": "via header"})
    assert status == 200 and body["offset"] == 1


async def test_publish_to_user_ids_reaches_each_users_channel(server, http, connect, user):
    alice, alice_token = await user()
    bob, _ = await user()
    _, admin = await user(scopes=("admin",))
    sub = Channels(await connect(alice_token))
    await sub.subscribe(f"user:{alice}")
    status, body = await api(http, server, "POST", "/api/v1/publish", admin,
                             json={"user_ids": [alice, bob], "type": "notice", "data": "hi"})
    assert status == 200, body
    assert [(r["channel"], r["offset"]) for r in body["results"]] == [
        (f"user:{alice}", 1), (f"user:{bob}", 1)]
    [got] = await sub.until(1)
    assert (got["channel"], got["type"], got["data"]) == (f"user:{alice}", "notice", "hi")


async def test_batch_publish_stores_each_item_in_order_and_reports_refusals(server, http,
                                                                            connect, user):
    _, token = await user()
    sub = Channels(await connect(token))
    await sub.subscribe("room:batch")
    items = [{"channel": "room:batch", "data": i} for i in range(300)]
    items.insert(7, {"channel": "broadcast:x", "data": "refused"})
    status, body = await api(http, server, "POST", "/api/v1/publish/batch", token,
                             json={"items": items})
    assert status == 200, body
    results = body["results"]
    assert results[7] == {"index": 7, "error": {"code": "PERMISSION_DENIED", "message":
                          results[7]["error"]["message"]}}
    offsets = [r["offset"] for r in results if "offset" in r]
    assert offsets == list(range(1, 301))
    got = await sub.until(300)
    assert [p["data"] for p in got] == list(range(300))
    too_many = {"items": [{"channel": "room:batch", "data": 0}] * 1001}
    status, body = await api(http, server, "POST", "/api/v1/publish/batch", token, json=too_many)
    assert status == 422 and body["error"]["code"] == "INVALID_BODY"


async def test_history_pages_through_a_channel(server, http, user):
    _, token = await user()
    for i in range(5):
        await api(http, server, "POST", "/api/v1/publish", token,
                  json={"channel": "room:h", "data": {"i": i}})
    status, body = await api(http, server, "GET", "/api/v1/channels/room:h/history?since=1&limit=2",
                             token)
    assert status == 200, body
    assert [p["offset"] for p in body["publications"]] == [2, 3]
    assert body["publications"][0]["data"] == {"i": 1}
    assert (body["offset"], body["first_offset"], body["recovered"], body["has_more"]) == (
        5, 1, True, True)
    status, body = await api(http, server, "GET", "/api/v1/channels/room:h/history?limit=0",
                             token)
    assert status == 400 and body["error"]["code"] == "BAD_PARAMETER"
    status, body = await api(http, server, "GET", "/api/v1/channels/user:999/history", token)
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED"


async def test_presence_lists_subscribers_and_pushes_joins_and_leaves(server, http, connect,
                                                                      user):
    alice, alice_token = await user()
    bob, bob_token = await user()
    a = Channels(await connect(alice_token, device_id="desk"))
    await a.subscribe("room:p")
    b = Channels(await connect(bob_token, device_id="phone"))
    await b.subscribe("room:p")
    status, body = await api(http, server, "GET", "/api/v1/channels/room:p/presence",
                             alice_token)
    assert status == 200
    assert body == {"channel": "room:p", "subscribers": [
        {"user_id": alice, "device_id": "desk"}, {"user_id": bob, "device_id": "phone"}]}
    await b.unsubscribe("room:p")
    await a.quiet()
    assert [(p["event"], p["user_id"]) for p in a.presence] == [
        ("join", alice), ("join", bob), ("leave", bob)]
    status, body = await api(http, server, "GET", "/api/v1/channels/plain/presence",
                             alice_token)
    assert status == 404 and body["error"]["code"] == "PRESENCE_DISABLED"


async def test_stats_add_up(server, http, connect, user):
    _, token = await user()
    _, admin = await user(scopes=("admin",))
    sub = Channels(await connect(token))
    await sub.subscribe("room:s1")
    items = ([{"channel": "room:s1", "data": i} for i in range(4)]
             + [{"channel": "room:s2", "type": "alert", "data": 0}]
             + [{"channel": "room:s2", "data": 1, "idempotency_key": "k"}] * 2)
    await api(http, server, "POST", "/api/v1/publish/batch", token, json={"items": items})
    status, body = await api(http, server, "GET", "/api/v1/stats", admin)
    assert status == 200, body
    today = utc_day(now_ms())
    assert body["publications"] == {"total": 6, "by_type": {"message": 5, "alert": 1},
                                    "by_day": {today: 6}}
    assert body["connections"] == 1 and body["subscriptions"] == 1
    assert body["channels"] == [
        {"channel": "room:s1", "published": 4, "retained": 4, "subscribers": 1},
        {"channel": "room:s2", "published": 2, "retained": 2, "subscribers": 0}]
    status, body = await api(http, server, "GET", "/api/v1/stats", token)
    assert status == 403 and "admin" in body["error"]["message"]


async def test_http_requests_over_the_token_rate_limit_get_429_with_retry_after(
        server_factory, http):
    node = await server_factory(http_rate_limit=1.0, http_rate_burst=3)
    uid, _ = await node.quick_user()
    token, _ = await node.node.service.auth.issue(uid)
    other, _ = await node.node.service.auth.issue(uid)
    statuses = []
    for _ in range(5):
        async with http.get(node.http_url + "/api/v1/channels/room:a/history",
                            headers={"Authorization": f"Bearer {token}"}) as r:
            statuses.append(r.status)
            retry = r.headers.get("Retry-After")
            body = await r.json()
    assert statuses == [200, 200, 200, 429, 429]
    assert retry == "1" and body["error"]["code"] == "RATE_LIMITED"
    async with http.get(node.http_url + "/api/v1/channels/room:a/history",
                        headers={"Authorization": f"Bearer {other}"}) as r:
        assert r.status == 200  # another token has its own bucket
    await asyncio.sleep(1.1)
    async with http.get(node.http_url + "/api/v1/channels/room:a/history",
                        headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
