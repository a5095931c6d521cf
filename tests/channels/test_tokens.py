"""Access tokens (seed 003): management API, scopes, revocation of live connections."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from tests.channels.conftest import api
from tests.channels.helpers import Channels, Refused
from tests.support.wire import Closed, Wire
from tidings.store import now_ms


async def test_create_list_view_update_and_revoke_a_token(server, http, user):
    uid, login = await user()
    status, made = await api(http, server, "POST", "/api/v1/tokens", login, json={
        "name": "ci publisher", "scopes": ["publish:room:*"], "expires_in": 3600,
        "device_id": "ci", "device_info": {"platform": "linux", "app": "jenkins"}})
    assert status == 201, made
    assert made["token"].startswith("tdg_") and made["user_id"] == uid
    assert (made["name"], made["scopes"], made["device_id"], made["status"]) == (
        "ci publisher", ["publish:room:*"], "ci", "active")
    assert made["device_info"] == {"platform": "linux", "app": "jenkins"}
    assert abs(made["expires_at"] - (now_ms() + 3_600_000)) < 60_000
    assert "token_hash" not in made
    tid = made["id"]

    status, listed = await api(http, server, "GET", "/api/v1/tokens", login)
    assert status == 200 and tid in [t["id"] for t in listed["tokens"]]
    assert all("token" not in t for t in listed["tokens"])  # shown once, at creation
    status, seen = await api(http, server, "GET", f"/api/v1/tokens/{tid}", login)
    assert status == 200 and seen["name"] == "ci publisher"

    status, changed = await api(http, server, "PATCH", f"/api/v1/tokens/{tid}", login,
                                json={"name": "renamed", "scopes": None,
                                      "device_info": {"platform": "mac"}})
    assert status == 200, changed
    assert (changed["name"], changed["scopes"], changed["device_info"], changed["device_id"]) \
        == ("renamed", None, {"platform": "mac"}, "ci")

    status, current = await api(http, server, "GET", "/api/v1/tokens/current", made["token"])
    assert status == 200 and current["kind"] == "token" and current["id"] == tid
    assert current["last_used_at"] is not None

    status, gone = await api(http, server, "DELETE", f"/api/v1/tokens/{tid}", login)
    assert status == 200 and gone == {"revoked": [tid]}
    status, body = await api(http, server, "GET", "/api/v1/tokens/current", made["token"])
    assert status == 401 and body["error"]["message"] == "token revoked"
    status, seen = await api(http, server, "GET", f"/api/v1/tokens/{tid}", login)
    assert seen["status"] == "revoked" and seen["revoked_at"] is not None


async def test_batch_revoke_skips_other_users_tokens(server, http, user):
    _, alice = await user()
    _, bob = await user()
    ids = []
    for _ in range(3):
        _, made = await api(http, server, "POST", "/api/v1/tokens", alice, json={})
        ids.append(made["id"])
    _, bobs = await api(http, server, "POST", "/api/v1/tokens", bob, json={})
    status, body = await api(http, server, "POST", "/api/v1/tokens/revoke", alice,
                             json={"ids": [*ids, bobs["id"], 999999]})
    assert status == 200 and body == {"revoked": sorted(ids)}
    status, body = await api(http, server, "GET", f"/api/v1/tokens/{bobs['id']}", alice)
    assert status == 404 and body["error"]["code"] == "TOKEN_NOT_FOUND"
    status, body = await api(http, server, "GET", f"/api/v1/tokens/{bobs['id']}", bob)
    assert status == 200 and body["status"] == "active"


async def test_token_management_refusals(server, http, user):
    uid, login = await user()
    _, scoped = await user(scopes=("publish:room:*",))
    _, admin = await user(scopes=("admin",))
    cases = [
        (scoped, "GET", "/api/v1/tokens", None, 403, "PERMISSION_DENIED"),
        (login, "POST", "/api/v1/tokens", {"scopes": ["admin"]}, 403, "PERMISSION_DENIED"),
        (login, "POST", "/api/v1/tokens", {"scopes": ["read:x"]}, 422, "INVALID_BODY"),
        (login, "POST", "/api/v1/tokens", {"user_id": 99999}, 403, "PERMISSION_DENIED"),
        (login, "POST", "/api/v1/tokens", {"nope": 1}, 422, "INVALID_BODY"),
        (login, "GET", "/api/v1/tokens/abc", None, 400, "BAD_PARAMETER"),
        (login, "GET", f"/api/v1/tokens?user_id={uid + 1000}", None, 403, "PERMISSION_DENIED"),
        (admin, "POST", "/api/v1/tokens", {"user_id": 99999}, 404, "USER_NOT_FOUND"),
        (login, "POST", "/api/v1/tokens/revoke", {"ids": []}, 422, "INVALID_BODY"),
    ]
    for token, method, path, body, status, code in cases:
        got, answer = await api(http, server, method, path, token, json=body)
        assert (got, answer["error"]["code"]) == (status, code), (method, path, body, answer)
    status, current = await api(http, server, "GET", "/api/v1/tokens/current", scoped)
    assert status == 200 and current["scopes"] == ["publish:room:*"]
    status, made = await api(http, server, "POST", "/api/v1/tokens", admin,
                             json={"user_id": uid, "scopes": ["admin"]})
    assert status == 201 and made["user_id"] == uid and made["scopes"] == ["admin"]


async def test_scopes_deny_what_they_should_and_say_which_scope_was_missing(
        server, http, connect, user):
    _, publisher = await user(scopes=("publish:room:*",))
    _, reader = await user(scopes=("subscribe:news",))
    _, nothing = await user(scopes=())
    pub = Channels(await connect(publisher))
    await pub.publish("room:ok", 1)
    with pytest.raises(Refused) as err:
        await pub.subscribe("room:ok")
    assert err.value.code == "WS_PERMISSION_DENIED"
    assert "subscribe:room:ok" in err.value.message
    with pytest.raises(Refused) as err:
        await pub.publish("news", 1)
    assert "publish:news" in err.value.message
    sub = Channels(await connect(reader))
    await sub.subscribe("news")
    with pytest.raises(Refused) as err:
        await sub.subscribe("newsroom")
    assert "subscribe:newsroom" in err.value.message
    status, body = await api(http, server, "POST", "/api/v1/publish", nothing,
                             json={"channel": "room:x", "data": 1})
    assert status == 403 and "publish:room:x" in body["error"]["message"]
    status, body = await api(http, server, "GET", "/api/v1/channels/news/history", publisher)
    assert status == 403 and "subscribe:news" in body["error"]["message"]


async def test_user_channels_belong_to_their_user(server, http, connect, user):
    alice, alice_token = await user()
    _, bob_token = await user()
    own = Channels(await connect(alice_token))
    await own.subscribe(f"user:{alice}")
    await own.subscribe(f"user:{alice}:inbox")
    other = Channels(await connect(bob_token))
    with pytest.raises(Refused) as err:
        await other.subscribe(f"user:{alice}")
    assert err.value.code == "WS_PERMISSION_DENIED" and "user:" in err.value.message
    with pytest.raises(Refused) as err:
        await own.publish(f"user:{alice}", "self")  # users: publish is admin only
    assert "admin scope" in err.value.message


async def test_revoking_a_token_closes_its_live_connections_within_a_second(
        server, http, connect, user):
    _, login = await user()
    _, made = await api(http, server, "POST", "/api/v1/tokens", login, json={"name": "desk"})
    doomed = await connect(made["token"])
    kept = await connect(login)  # same user, other token: stays
    started = time.monotonic()
    status, _ = await api(http, server, "DELETE", f"/api/v1/tokens/{made['id']}", login)
    assert status == 200
    assert await doomed.closed_with(timeout=5) == 4403
    assert time.monotonic() - started < 1.0
    await kept.send(6)
    assert (await kept.expect(105))[1] == {}


async def test_a_revocation_made_in_the_store_closes_connections_too(server, http, connect,
                                                                    user):
    """``tidings token revoke`` writes the store directly: nodes notice by polling."""
    uid, token = await user()
    wire = await connect(token)
    row = await server.node.store.get_token_by_id(
        next(c.token_id for c in server.node.hub.connections(uid)))
    assert row is not None
    started = time.monotonic()
    assert await server.node.store.revoke_tokens(None, [row.id], now_ms()) == [row.id]
    assert await wire.closed_with(timeout=5) == 4403
    assert time.monotonic() - started < 1.5


async def test_jwt_scopes_claim_limits_the_connection(server_factory, http):
    node = await server_factory(jwt_secret="s3cret-for-tests-that-is-32-bytes!!")
    uid, _ = await node.quick_user()
    claims = {"sub": str(uid), "exp": int(time.time()) + 600, "scopes": "subscribe:room:*"}
    token = jwt.encode(claims, "s3cret-for-tests-that-is-32-bytes!!", algorithm="HS256")
    chan = Channels(await Wire.ready(http, node.ws_url, token))
    await chan.subscribe("room:j")
    with pytest.raises(Refused) as err:
        await chan.publish("room:j", 1)
    assert "publish:room:j" in err.value.message
    async with http.get(node.http_url + "/api/v1/tokens/current",
                        headers={"Authorization": f"Bearer {token}"}) as r:
        assert await r.json() == {"kind": "jwt", "user_id": uid, "device_id": None,
                                  "scopes": ["subscribe:room:*"]}
    async with http.post(node.http_url + "/api/v1/tokens", json={},
                         headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 403


async def test_a_revoked_token_cannot_reconnect(server, http, connect, user):
    _, login = await user()
    _, made = await api(http, server, "POST", "/api/v1/tokens", login, json={})
    await api(http, server, "POST", "/api/v1/tokens/revoke", login, json={"ids": [made["id"]]})
    wire = await Wire.open(http, server.ws_url)
    await wire.send(1, {"token": made["token"]})
    _, rsp = await wire.expect(101)
    assert rsp["success"] is False and "token revoked" in rsp["error"]
    with pytest.raises(Closed):
        await asyncio.wait_for(wire.recv(), 5)
