"""The HTTP API through real sockets against a real node, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from tests.support.server import RunningServer
from tests.support.wire import Wire
from tidings.protocol.codes import ErrorCode, MsgType

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
PASSWORD = "correct horse"


async def call(http: aiohttp.ClientSession, server: RunningServer, method: str, path: str, *,
               token: str | None = None, headers: dict[str, str] | None = None,
               **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    """One request; return (status, decoded JSON or text, response)."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, server.http_url + path, headers=headers, **kwargs) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body, r


def error_code(body: Any) -> str:
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return str(body["error"]["code"])


async def online(server: RunningServer, http: aiohttp.ClientSession, token: str,
                 device_id: str | None = None) -> Wire:
    """An authenticated WebSocket whose backlog has been read."""
    wire = await Wire.open(http, server.ws_url)
    await wire.auth(token, device_id)
    await wire.backlog()
    return wire


# registration


async def test_register_creates_a_user_and_answers_201(server, http):
    status, body, _ = await call(http, server, "POST", REGISTER,
                                 json={"username": "alice", "password": PASSWORD})
    assert status == 201
    assert body["username"] == "alice" and isinstance(body["user_id"], int)
    assert (await server.node.store.get_user_by_name("alice")).id == body["user_id"]


async def test_registering_a_taken_name_is_409_username_taken(server, http):
    body = {"username": "bob", "password": PASSWORD}
    assert (await call(http, server, "POST", REGISTER, json=body))[0] == 201
    status, answer, _ = await call(http, server, "POST", REGISTER,
                                   json={"username": "bob", "password": "another one"})
    assert status == 409 and error_code(answer) == "USERNAME_TAKEN"


INVALID_BODIES: dict[str, object] = {
    "short-password": {"username": "carol", "password": "short"},
    "space-in-name": {"username": "has space", "password": PASSWORD},
    "empty-name": {"username": "", "password": PASSWORD},
    "long-name": {"username": "x" * 65, "password": PASSWORD},
    "quote-in-name": {"username": "quote'd", "password": PASSWORD},
    "trailing-newline": {"username": "carol\n", "password": PASSWORD},
    "unknown-field": {"username": "carol", "password": PASSWORD, "admin": True},
    "missing-password": {"username": "carol"},
    "name-not-string": {"username": 5, "password": PASSWORD},
    "long-device-id": {"username": "carol", "password": PASSWORD, "device_id": "d" * 201},
    "not-an-object": ["carol", PASSWORD],
}


async def test_invalid_register_body_is_422_invalid_body(server, http):
    for case, body in INVALID_BODIES.items():
        status, answer, _ = await call(http, server, "POST", REGISTER, json=body)
        assert (status, error_code(answer)) == (422, "INVALID_BODY"), case
    assert await server.node.store.get_user_by_name("carol") is None
    assert await server.node.store.get_user_by_name("carol\n") is None


async def test_body_that_is_not_json_is_400_bad_json(server, http):
    for path in (REGISTER, LOGIN):
        trailing = b'{"username": "a", "password": "12345678"} x'
        for data in (b"", b"{", b"username=a&password=b", b"\xff\xfe", trailing):
            status, answer, _ = await call(http, server, "POST", path, data=data,
                                           headers={"Content-Type": "application/json"})
            assert (status, error_code(answer)) == (400, "BAD_JSON"), (path, data)


async def test_body_over_max_body_bytes_is_413_body_too_large(server_factory, http):
    server = await server_factory(max_body_bytes=256)
    small = {"username": "dave", "password": "p" * 100}
    big = {"username": "dave", "password": "p" * 1000}
    for path in (REGISTER, LOGIN):
        status, answer, _ = await call(http, server, "POST", path, json=big)
        assert (status, error_code(answer)) == (413, "BODY_TOO_LARGE"), path
        assert "256" in answer["error"]["message"]
    # Under the limit both endpoints work: register 201, then login 200.
    assert (await call(http, server, "POST", REGISTER, json=small))[0] == 201
    assert (await call(http, server, "POST", LOGIN, json=small))[0] == 200


# login


async def test_login_returns_a_token_the_user_id_and_the_expiry(server, http):
    creds = {"username": "erin", "password": PASSWORD}
    _, registered, _ = await call(http, server, "POST", REGISTER, json=creds)
    before = int(time.time() * 1000)
    status, body, _ = await call(http, server, "POST", LOGIN, json=creds)
    assert status == 200 and set(body) == {"token", "user_id", "expires_at"}
    assert body["user_id"] == registered["user_id"]
    assert body["token"].startswith("tdg_")
    ttl_ms = server.node.settings.token_ttl * 1000
    assert before + ttl_ms - 5_000 <= body["expires_at"] <= before + ttl_ms + 60_000
    identity = await server.node.service.auth.verify(body["token"])
    assert identity.user_id == registered["user_id"] and identity.device_id is None


async def test_bad_credentials_are_401_invalid_credentials(server, http):
    await call(http, server, "POST", REGISTER, json={"username": "frank", "password": PASSWORD})
    wrong_password = {"username": "frank", "password": "wrong password"}
    unknown_user = {"username": "nobody-here", "password": PASSWORD}
    for creds in (wrong_password, unknown_user):
        status, answer, _ = await call(http, server, "POST", LOGIN, json=creds)
        assert (status, error_code(answer)) == (401, "INVALID_CREDENTIALS"), creds
        # The same answer either way: no telling which usernames exist.
        assert answer["error"]["message"] == "wrong username or password"


async def test_login_device_id_is_the_connection_device_when_auth_names_none(server, http):
    _, token = await server.new_user(device_id="phone-1")
    wire = await Wire.open(http, server.ws_url)
    rsp = await wire.auth(token)
    assert rsp["device_id"] == "phone-1"
    # A device named at auth time still wins over the token's.
    other = await Wire.open(http, server.ws_url)
    assert (await other.auth(token, "tablet"))["device_id"] == "tablet"


# history


BAD_AUTHORIZATION = {
    "none": {},
    "unknown-token": {"Authorization": "Bearer tdg_not-a-real-token"},
    "jwt-not-configured": {"Authorization": "Bearer not.a.jwt"},
    "empty-token": {"Authorization": "Bearer "},
    "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    "no-scheme": {"Authorization": "tdg_token-without-scheme"},
}


async def test_authenticated_endpoints_are_401_without_a_valid_bearer_token(server, http):
    for path in ("/api/v1/messages?peer=1", "/api/v1/presence?user_ids=1"):
        for case, headers in BAD_AUTHORIZATION.items():
            status, answer, _ = await call(http, server, "GET", path, headers=headers)
            assert (status, error_code(answer)) == (401, "UNAUTHORIZED"), (path, case)


async def test_a_revoked_or_expired_token_is_401(server, http):
    user_id, _ = await server.quick_user()
    expired, _ = await server.node.service.auth.issue(user_id, ttl_ms=-1)
    status, answer, _ = await call(http, server, "GET", "/api/v1/messages?peer=1",
                                   token=expired)
    assert status == 401 and "expired" in answer["error"]["message"]


async def test_messages_requires_a_peer(server, http):
    _, token = await server.quick_user()
    for path in ("/api/v1/messages", "/api/v1/messages?peer="):
        status, answer, _ = await call(http, server, "GET", path, token=token)
        assert status == 400 and error_code(answer) == "BAD_PARAMETER"
        assert "peer" in answer["error"]["message"]


async def test_bad_query_parameters_are_400_bad_parameter(server, http):
    _, token = await server.quick_user()
    for query in ("peer=abc", "peer=0", "peer=-3", "peer=1.5", "peer=" + "9" * 20,
                  "peer=1&limit=abc", "peer=1&limit=0", "peer=1&limit=501", "peer=1&limit=-1",
                  "peer=1&limit=" + "9" * 30, "peer=1&limit=" + "9" * 5000,
                  "peer=1&before=0", "peer=1&before=x"):
        status, answer, _ = await call(http, server, "GET", "/api/v1/messages?" + query,
                                       token=token)
        assert (status, error_code(answer)) == (400, "BAD_PARAMETER"), query[:40]


async def test_history_is_newest_first_and_pages_with_before(server, http):
    a_id, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    a = await online(server, http, a_token)
    b = await online(server, http, b_token)
    sent = []
    for i in range(5):
        sender, to = (a, b_id) if i % 2 == 0 else (b, a_id)
        sent.append((await sender.chat(to, f"m{i}"))["message_id"])

    status, body, _ = await call(http, server, "GET", f"/api/v1/messages?peer={b_id}",
                                 token=a_token)
    assert status == 200
    assert [m["message_id"] for m in body["messages"]] == sent[::-1]
    assert body["next_before"] is None
    newest = body["messages"][0]
    assert newest == {"message_id": sent[4], "from": a_id, "to": b_id, "type": "text",
                      "content": "m4", "created_at": newest["created_at"],
                      "status": newest["status"]}

    pages, before = [], ""
    while True:
        status, body, _ = await call(
            http, server, "GET", f"/api/v1/messages?peer={b_id}&limit=2{before}", token=a_token)
        assert status == 200
        pages.append([m["message_id"] for m in body["messages"]])
        if body["next_before"] is None:
            break
        assert body["next_before"] == pages[-1][-1]
        before = f"&before={body['next_before']}"
    assert pages == [sent[:2:-1], sent[2:0:-1], sent[:1]]

    # The other side sees the same conversation.
    _, body, _ = await call(http, server, "GET", f"/api/v1/messages?peer={a_id}", token=b_token)
    assert [m["message_id"] for m in body["messages"]] == sent[::-1]


async def test_history_only_shows_conversations_the_caller_is_part_of(server, http):
    a_id, a_token = await server.quick_user()
    b_id, _ = await server.quick_user()
    _, c_token = await server.quick_user()
    a = await online(server, http, a_token)
    await a.chat(b_id, "private to bob")
    for peer in (a_id, b_id):
        status, body, _ = await call(http, server, "GET", f"/api/v1/messages?peer={peer}",
                                     token=c_token)
        assert status == 200 and body == {"messages": [], "next_before": None}


# presence


async def test_presence_shows_self_and_peers_and_hides_strangers(server, http):
    a_id, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    c_id, _ = await server.quick_user()
    a = await online(server, http, a_token)
    await a.chat(b_id, "hi")
    path = f"/api/v1/presence?user_ids={a_id},{b_id},{c_id}"
    status, body, _ = await call(http, server, "GET", path, token=a_token)
    assert status == 200
    assert body == {"presence": [{"user_id": a_id, "status": "online"},
                                 {"user_id": b_id, "status": "offline"},
                                 {"user_id": c_id, "status": "unknown"}]}

    b = await online(server, http, b_token)
    await b.send(MsgType.PRESENCE, {"status": "away"})
    while (await a.expect(MsgType.PRESENCE_PUSH, skip=()))[1] != {"user_id": b_id,
                                                                  "status": "away"}:
        pass
    _, body, _ = await call(http, server, "GET", f"/api/v1/presence?user_ids={b_id}, {c_id}",
                            token=a_token)
    assert body["presence"] == [{"user_id": b_id, "status": "away"},
                                {"user_id": c_id, "status": "unknown"}]


async def test_presence_without_valid_user_ids_is_400(server, http):
    _, token = await server.quick_user()
    for query in ("", "?user_ids=", "?user_ids=,", "?user_ids=a,b", "?user_ids=1;2",
                  "?user_ids=1.5"):
        status, answer, _ = await call(http, server, "GET", "/api/v1/presence" + query,
                                       token=token)
        assert (status, error_code(answer)) == (400, "BAD_PARAMETER"), query


# health and metrics


async def test_health_reports_ok_store_connections_and_uptime(server, http):
    status, body, _ = await call(http, server, "GET", "/api/health")
    assert status == 200
    assert body["status"] == "ok" and body["store"] == "ok" and body["connections"] == 0
    assert body["uptime_seconds"] >= 0
    _, token = await server.quick_user()
    wires = [await online(server, http, token) for _ in range(2)]  # kept open
    _, later, _ = await call(http, server, "GET", "/api/health")
    assert later["connections"] == len(wires)
    assert later["uptime_seconds"] >= body["uptime_seconds"]


async def test_health_is_503_degraded_when_the_store_is_down(server, http, monkeypatch):
    store = server.node.store
    refreshed: list[bool] = []

    async def refresh() -> None:  # the real one, counted
        refreshed.append(True)
        await type(store).refresh(store)

    monkeypatch.setattr(store, "refresh", refresh)
    _, ok, _ = await call(http, server, "GET", "/api/health")
    assert ok["status"] == "ok" and not refreshed
    await store.close()
    status, body, _ = await call(http, server, "GET", "/api/health")
    assert status == 503
    assert body["status"] == "degraded" and body["store"].startswith("error: ")
    assert refreshed == [True]  # the next statements get fresh connections


async def test_metrics_count_connections_stored_messages_and_errors(server, http):
    _, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    status, text, response = await call(http, server, "GET", "/metrics")
    assert status == 200 and response.content_type == "text/plain"
    assert "tidings_connections 0.0" in text

    a = await online(server, http, a_token)
    b = await online(server, http, b_token)
    await a.chat(b_id, "counted")
    await b.expect(MsgType.CHAT_PUSH)
    await a.send(MsgType.CHAT, {"to": 999_999, "type": "text", "content": "x"})
    _, err = await a.expect(MsgType.ERROR)
    assert err["code"] == ErrorCode.USER_NOT_FOUND

    _, text, _ = await call(http, server, "GET", "/metrics")
    assert "tidings_connections 2.0" in text
    assert "tidings_messages_stored_total 1.0" in text
    assert f'tidings_errors_total{{code="{ErrorCode.USER_NOT_FOUND}"}} 1.0' in text


# routing and failures


async def test_unknown_route_is_404_json(server, http):
    for method, path in (("GET", "/nope"), ("POST", "/api/v1/nope"), ("GET", "/api/v1/messages/1")):
        status, answer, response = await call(http, server, method, path)
        assert (status, error_code(answer)) == (404, "NOT_FOUND"), path
        assert response.content_type == "application/json"


async def test_wrong_method_is_405_json_with_allow(server, http):
    for method, path, allowed in (("GET", REGISTER, "POST"), ("PUT", LOGIN, "POST"),
                                  ("POST", "/api/health", "GET"),
                                  ("DELETE", "/api/v1/messages", "GET")):
        status, answer, response = await call(http, server, method, path)
        assert (status, error_code(answer)) == (405, "METHOD_NOT_ALLOWED"), (method, path)
        assert response.content_type == "application/json"
        assert allowed in response.headers["Allow"]


async def test_an_unexpected_failure_is_500_json_without_details(server, http, monkeypatch,
                                                                 caplog):
    _, token = await server.quick_user()

    async def broken(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server.node.store, "history", broken)
    status, answer, _ = await call(http, server, "GET", "/api/v1/messages?peer=1", token=token)
    assert status == 500 and answer == {"error": {"code": "INTERNAL_ERROR",
                                                  "message": "internal error"}}
    assert "secret internals" in caplog.text  # logged for operators, not sent


async def test_sql_looking_names_and_content_are_stored_verbatim(server, http):
    for name in ("admin--", "x@y.z--", "1-1"):
        status, body, _ = await call(http, server, "POST", REGISTER,
                                     json={"username": name, "password": PASSWORD})
        assert status == 201 and body["username"] == name
        assert (await server.node.store.get_user_by_name(name)).username == name
    status, answer, _ = await call(http, server, "POST", REGISTER, json={
        "username": "x'; DROP TABLE users; --", "password": PASSWORD})
    assert status == 422 and error_code(answer) == "INVALID_BODY"

    _, a_token = await server.quick_user()
    b_id, _ = await server.quick_user()
    a = await online(server, http, a_token)
    content = "'); DROP TABLE messages; -- \" OR 1=1 \\ %s $1 ?"
    await a.chat(b_id, content)
    _, body, _ = await call(http, server, "GET", f"/api/v1/messages?peer={b_id}",
                            token=a_token)
    assert [m["content"] for m in body["messages"]] == [content]
    status, login, _ = await call(http, server, "POST", LOGIN,
                                  json={"username": "admin--", "password": PASSWORD})
    assert status == 200 and login["token"]
