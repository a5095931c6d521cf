"""Authentication under attack: forged, unsigned, algorithm-confused, tampered,
expired and revoked tokens on /ws and HTTP; frames before and after MsgAuth; reads
and writes across users.

docs/protocol.md: a refused token gets MsgAuthRsp{success:false, "WS_AUTH_FAILED: …"}
and close 4401 on /ws, 401 UNAUTHORIZED on HTTP; before MsgAuth succeeds every other
frame gets WS_NOT_AUTHENTICATED and the auth_timeout deadline does not move.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.hostile.helpers import (
    assert_bystander_chats,
    authed,
    history,
    reply_to,
    server_errors,
    still_answers,
)
from tests.support.wire import Wire
from tidings.auth import hash_token
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType
from tidings.store.base import now_ms

SECRET = "hostile-tests-hs256-secret-0123456789"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A JWT signed with HMAC-SHA256 by hand (PyJWT refuses a PEM as an HMAC key)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _unsigned(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


async def _refused(server, http, token: str) -> tuple[str, str]:
    """(the /ws MsgAuthRsp error, the HTTP 401 message) for a refused token. A token no
    HTTP header can carry (NUL, non-Latin-1) is tried on /ws only."""
    wire = await Wire.open(http, server.ws_url)
    seq = await wire.send(MsgType.AUTH, {"token": token})
    got, rsp = await wire.expect(MsgType.AUTH_RSP)
    assert got == seq and rsp["success"] is False, rsp
    assert rsp["error"].startswith(ErrorCode.AUTH_FAILED + ": "), rsp
    assert await wire.closed_with(3) == CloseCode.AUTH_FAILED
    if "\x00" in token or not token.isascii():
        return rsp["error"], "(not sent over HTTP)"
    async with http.get(f"{server.http_url}/api/v1/presence?user_ids=1",
                        headers={"Authorization": f"Bearer {token}"}) as r:
        body = await r.json()
        assert (r.status, body["error"]["code"]) == (401, "UNAUTHORIZED"), body
    return rsp["error"], body["error"]["message"]


async def _accepted(server, http, token: str, user_id: int) -> None:
    wire = await authed(server, http, token)
    assert wire.user_id == user_id
    await wire.close()
    async with http.get(f"{server.http_url}/api/v1/presence?user_ids={user_id}",
                        headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200


async def test_unsigned_alg_none_jwt_is_refused(server_factory, http):
    server = await server_factory(jwt_secret=SECRET)
    user_id, _ = await server.quick_user()
    claims = {"sub": str(user_id), "exp": int(time.time()) + 60}
    await _accepted(server, http, jwt.encode(claims, SECRET, "HS256"), user_id)  # control
    for token in (_unsigned(claims),
                  _unsigned(claims) + _b64(b"x" * 32),
                  _hand_signed({"alg": "None", "typ": "JWT"}, claims, b""),
                  _hand_signed({"alg": "none"}, claims, SECRET.encode())):
        await _refused(server, http, token)
    await assert_bystander_chats(server, http)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("also_hs256", [False, True], ids=["rs256-only", "rs256-and-hs256"])
async def test_hs256_signed_with_the_rs256_public_key_is_refused(server_factory, http,
                                                                 tmp_path: Path, rsa_key,
                                                                 also_hs256):
    """The classic algorithm confusion: the server's public key (public by definition)
    used as an HMAC secret. RFC 8725 §2.1: the verifier must pin the algorithm."""
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    key_file = tmp_path / "jwt.pub.pem"
    key_file.write_bytes(pem)
    server = await server_factory(jwt_public_key_file=str(key_file),
                                  jwt_secret=SECRET if also_hs256 else "")
    user_id, _ = await server.quick_user()
    claims = {"sub": str(user_id), "exp": int(time.time()) + 60}
    await _accepted(server, http, jwt.encode(claims, rsa_key, "RS256"), user_id)  # control
    for pem_variant in (pem, pem.strip(), pem.replace(b"\n", b"\r\n")):
        for header in ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256"}):
            await _refused(server, http, _hand_signed(header, claims, pem_variant))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    await _refused(server, http, jwt.encode(claims, other_key, "RS256"))  # wrong key
    await assert_bystander_chats(server, http)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_tampered_and_malformed_jwt_claims_are_refused(server_factory, http):
    server = await server_factory(jwt_secret=SECRET)
    user_id, _ = await server.quick_user()
    victim_id, _ = await server.quick_user()
    now = int(time.time())
    good = jwt.encode({"sub": str(user_id), "exp": now + 60}, SECRET, "HS256")
    header, _, signature = good.split(".")
    forged_claims = _b64(json.dumps({"sub": str(victim_id), "exp": now + 60}).encode())
    tokens = {
        "claims swapped, signature kept": f"{header}.{forged_claims}.{signature}",
        "signature stripped": f"{header}.{good.split('.')[1]}.",
        "signature of another token": f"{header}.{good.split('.')[1]}."
                                      + jwt.encode({"sub": str(victim_id), "exp": now + 60},
                                                   SECRET, "HS256").split(".")[2],
        "HS512 with the same secret": jwt.encode({"sub": str(user_id), "exp": now + 60},
                                                 SECRET, "HS512"),
        "expired 60 s ago": jwt.encode({"sub": str(user_id), "exp": now - 60}, SECRET, "HS256"),
        "nbf in the future": jwt.encode({"sub": str(user_id), "exp": now + 60, "nbf": now + 30},
                                        SECRET, "HS256"),
        # PyJWT reads a numeric string exp with int(); it must still be enforced.
        "past exp as a string": _hand_signed({"alg": "HS256", "typ": "JWT"},
                                             {"sub": str(user_id), "exp": str(now - 60)},
                                             SECRET.encode()),
        "exp not a number": _hand_signed({"alg": "HS256", "typ": "JWT"},
                                         {"sub": str(user_id), "exp": "tomorrow"},
                                         SECRET.encode()),
        "no sub": jwt.encode({"exp": now + 60}, SECRET, "HS256"),
        **{f"sub {sub!r}": _hand_signed({"alg": "HS256", "typ": "JWT"},
                                        {"sub": sub, "exp": now + 60}, SECRET.encode())
           for sub in ("-1", "0", "1e3", "٣", " 1", "1 ", "0x1", str(2**63), "", None,
                       [user_id], user_id + 0.5)},
    }
    for name, token in tokens.items():
        ws_error, http_error = await _refused(server, http, token)
        assert ws_error and http_error, name
    await assert_bystander_chats(server, http)


async def test_revoked_token_replayed_on_ws_and_http_is_refused(server, http):
    """docs: revoked tokens are refused (checked at auth; a live connection is not cut)."""
    user_id, token = await server.quick_user()
    await _accepted(server, http, token, user_id)
    row = await server.node.store.get_token(hash_token(token))
    assert row is not None
    assert await server.node.store.revoke_token(row.id, now_ms())
    ws_error, http_error = await _refused(server, http, token)
    assert ws_error.endswith("token revoked") and http_error == "token revoked"
    _, other = await server.quick_user()  # other tokens of the node still work
    await _accepted(server, http, other, (await server.node.store.get_token(
        hash_token(other))).user_id)
    await assert_bystander_chats(server, http)


async def test_opaque_token_variants_are_refused(server, http):
    _, token = await server.quick_user()
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (flipped, token.upper(), token[:-1], token + "x", token + "\x00",
                "TDG_" + token[4:], "tdg_", "tdg_" + "a" * 8000, "tdg_ünïcödé",
                "tdg_" + "'" * 43, "a.b.c"):
        await _refused(server, http, bad)
    await assert_bystander_chats(server, http)


async def test_frames_before_auth_are_refused_and_nothing_is_stored(server, http):
    """Every client type but MsgAuth, in both framings, before authentication:
    WS_NOT_AUTHENTICATED with the seq; no chat stored, no presence change."""
    recipient, r_token = await server.quick_user()
    sender, token = await server.quick_user()
    for binary in (True, False):
        wire = await Wire.open(http, server.ws_url, binary=binary)
        for type_, payload in ((MsgType.CHAT, {"to": recipient, "type": "text",
                                               "content": "sneaky"}),
                               (MsgType.ACK, {"message_id": 1, "status": "read"}),
                               (MsgType.SYNC_REQ, {"last_message_id": 0}),
                               (MsgType.PRESENCE, {"status": "away"}),
                               (MsgType.PING, None), (101, {"success": True})):
            seq = await wire.send(type_, payload)
            t, got, answer = await reply_to(wire)
            assert (t, got, answer["code"]) == (MsgType.ERROR, seq,
                                                ErrorCode.NOT_AUTHENTICATED), type_
        await wire.auth(token)  # the same connection may still authenticate
        await wire.backlog()
        await wire.close()
    assert await history(server, http, r_token, sender) == []
    await assert_bystander_chats(server, http)


async def test_invalid_auth_payloads_are_invalid_payload_and_auth_can_be_retried(server, http):
    user_id, token = await server.quick_user()
    wire = await Wire.open(http, server.ws_url)
    for payload in ({"token": 12345}, {}, {"token": None}, {"token": ["tdg_x"]},
                    {"token": "t" * 8193}, {"token": token, "device_id": "d" * 201},
                    {"token": token, "device_id": 7}, {"token": {"$ne": ""}}):
        seq = await wire.send(MsgType.AUTH, payload)
        t, got, answer = await reply_to(wire)
        assert (t, got, answer["code"]) == (MsgType.ERROR, seq, ErrorCode.INVALID_PAYLOAD), \
            payload
    rsp = await wire.auth(token, "d" * 200)  # at the limits: accepted
    assert rsp["user_id"] == user_id and rsp["device_id"] == "d" * 200
    await wire.close()
    await assert_bystander_chats(server, http)


async def test_second_auth_with_another_users_token_does_not_switch_identity(server, http):
    me, my_token = await server.quick_user()
    other, other_token = await server.quick_user()
    peer, peer_token = await server.quick_user()
    wire = await authed(server, http, my_token)
    seq = await wire.send(MsgType.AUTH, {"token": other_token})
    t, got, answer = await reply_to(wire)
    assert (t, got, answer["code"]) == (MsgType.ERROR, seq, ErrorCode.ALREADY_AUTHENTICATED)
    await wire.chat(peer, "who am I?")
    stored = await history(server, http, peer_token, me)
    assert [(m["from"], m["content"]) for m in stored] == [(me, "who am I?")]
    assert await history(server, http, peer_token, other) == []
    assert server.node.hub.count(other) == 0
    await wire.close()
    await assert_bystander_chats(server, http)


async def test_no_reads_or_writes_across_users(server, http):
    """Carol tries to see or touch Alice↔Bob: history with every peer/before/limit trick,
    sync from 0, a read-ack of their message id, presence. She gets nothing and
    changes nothing."""
    a_id, a_token = await server.quick_user()
    b_id, b_token = await server.quick_user()
    c_id, c_token = await server.quick_user()
    alice = await authed(server, http, a_token)
    bob = await authed(server, http, b_token)
    private = (await alice.chat(b_id, "alice to bob, private"))["message_id"]
    await bob.expect(MsgType.CHAT_PUSH)
    carol = await authed(server, http, c_token)
    await alice.chat(c_id, "alice to carol")  # carol now holds an id above `private`
    _, push = await carol.expect(MsgType.CHAT_PUSH)
    assert push["message_id"] > private
    for peer in (a_id, b_id, c_id):
        for query in ("", f"&before={private + 1}", "&limit=500", f"&before={2**63 - 1}"):
            for message in await _history_raw(server, http, c_token, f"peer={peer}{query}"):
                assert c_id in (message["from"], message["to"]), message
    seq = await carol.send(MsgType.SYNC_REQ, {"last_message_id": 0})
    _, page = await carol.expect(MsgType.SYNC_RSP)
    assert all(c_id in (m["from"], m["to"]) for m in page["messages"])
    await carol.send(MsgType.ACK, {"message_id": private, "status": "read"}, seq=seq + 1)
    await still_answers(carol)
    await still_answers(alice)
    statuses = {m["message_id"]: m["status"] for m in await history(server, http, a_token, b_id)}
    assert statuses[private] == "sent", "carol's read-ack changed alice→bob's message"
    async with http.get(f"{server.http_url}/api/v1/presence?user_ids={a_id},{b_id}",
                        headers={"Authorization": f"Bearer {c_token}"}) as r:
        body = await r.json()
    assert body["presence"] == [{"user_id": a_id, "status": "online"},
                                {"user_id": b_id, "status": "unknown"}]
    for wire in (alice, bob, carol):
        await wire.close()
    await assert_bystander_chats(server, http)


async def _history_raw(server, http, token: str, query: str) -> list[dict[str, Any]]:
    async with http.get(f"{server.http_url}/api/v1/messages?{query}",
                        headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return list((await r.json())["messages"])


async def test_nul_in_the_auth_device_id_does_not_leave_a_half_registered_connection(
        server, http, request, store_url):
    """MsgAuth with device_id "dev\\u0000ice": either a normal session for that device
    (as on SQLite) or WS_INVALID_PAYLOAD before anything is registered."""
    user_id, token = await server.quick_user()
    sender = await authed(server, http)
    wire = await Wire.open(http, server.ws_url)
    seq = await wire.send(MsgType.AUTH, {"token": token, "device_id": "dev\x00ice"})
    t, got, answer = await reply_to(wire)
    if t == MsgType.ERROR:
        assert (got, answer["code"]) == (seq, ErrorCode.INVALID_PAYLOAD), answer
        assert server.node.hub.count(user_id) == 0
    else:
        assert (t, got, answer["success"]) == (MsgType.AUTH_RSP, seq, True)
        _, page = await wire.expect(MsgType.SYNC_RSP)
        assert page["has_more"] is False
        await sender.chat(user_id, "to the NUL device")
        _, push = await wire.expect(MsgType.CHAT_PUSH)
        assert push["content"] == "to the NUL device"
    assert not server_errors.records, server_errors.summary()
    await wire.close()
    await sender.close()
    await assert_bystander_chats(server, http)
