"""Opaque access tokens and JWTs (HS256 and RS256), against a real SQLite store."""

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

from tidings.auth import Authenticator, AuthError, Identity, hash_token, new_token
from tidings.auth.tokens import TOKEN_PREFIX
from tidings.config import Settings
from tidings.store.base import now_ms

SECRET = "an-hs256-secret-of-32-bytes-min!"


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return _private_key()


@pytest.fixture
def public_key_file(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> Path:
    path = tmp_path / "jwt.pub.pem"
    path.write_bytes(rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


@pytest.fixture
async def user_id(sqlite_store) -> int:
    return (await sqlite_store.create_user("alice", "!no-password")).id


def claims(sub: object, **extra: object) -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time()) + 60, **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def refused(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthError) as exc:
        await auth.verify(token)
    return str(exc.value)


# opaque tokens


def test_a_token_is_stored_as_its_sha256():
    token = "tdg_example"
    assert hash_token(token) == hashlib.sha256(b"tdg_example").hexdigest()
    assert len(hash_token(token)) == 64 and hash_token(token) != hash_token(token + "x")


def test_new_tokens_are_prefixed_random_and_unique():
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert token.startswith(TOKEN_PREFIX) and len(token) == len(TOKEN_PREFIX) + 43


async def test_an_issued_token_verifies_and_records_its_use(sqlite_store, user_id):
    auth = Authenticator(sqlite_store, Settings(token_ttl=60))
    before = now_ms()
    token, expires_at = await auth.issue(user_id, name="t", device_id="phone")
    assert before + 60_000 <= expires_at <= now_ms() + 60_000
    row = await sqlite_store.get_token(hash_token(token))
    assert row is not None and row.token_hash != token and row.last_used_at is None
    assert await auth.verify(token) == Identity(user_id, "phone", row.id,
                                                expires_at=row.expires_at)
    assert (await sqlite_store.get_token(hash_token(token))).last_used_at is not None


async def test_unknown_revoked_and_expired_opaque_tokens_are_refused(sqlite_store, user_id):
    auth = Authenticator(sqlite_store, Settings())
    assert await refused(auth, new_token()) == "invalid token"
    revoked, _ = await auth.issue(user_id)
    await sqlite_store.revoke_token((await sqlite_store.get_token(hash_token(revoked))).id,
                                    now_ms())
    assert await refused(auth, revoked) == "token revoked"
    expired, _ = await auth.issue(user_id, ttl_ms=-1)
    assert await refused(auth, expired) == "token expired"


@pytest.mark.parametrize("token", ["", "abc", "Bearer tdg_x", "a.b.c", "x.y"])
async def test_a_token_of_unknown_format_is_refused(sqlite_store, token):
    auth = Authenticator(sqlite_store, Settings())  # no JWT keys: a JWT is unknown too
    assert await refused(auth, token) == "unknown token format"


# RS256 JWTs


async def test_an_rs256_jwt_signed_by_the_configured_key_authenticates(
        sqlite_store, user_id, rsa_key, public_key_file):
    auth = Authenticator(sqlite_store, Settings(jwt_public_key_file=str(public_key_file)))
    web = claims(str(user_id), device_id="web")
    token = jwt.encode(web, rsa_key, algorithm="RS256")
    assert await auth.verify(token) == Identity(user_id, "web", expires_at=web["exp"] * 1000)
    numeric = claims(str(user_id), device_id=42)
    plain = jwt.encode(numeric, rsa_key, algorithm="RS256")
    # A non-string device is ignored.
    assert await auth.verify(plain) == Identity(user_id, None, expires_at=numeric["exp"] * 1000)


async def test_an_rs256_jwt_signed_by_another_key_is_refused(sqlite_store, user_id,
                                                             public_key_file):
    auth = Authenticator(sqlite_store, Settings(jwt_public_key_file=str(public_key_file)))
    token = jwt.encode(claims(str(user_id)), _private_key(), algorithm="RS256")
    assert (await refused(auth, token)).startswith("invalid JWT: ")


async def test_an_unsigned_alg_none_jwt_is_refused(sqlite_store, user_id, public_key_file):
    auth = Authenticator(sqlite_store, Settings(jwt_public_key_file=str(public_key_file),
                                                jwt_secret=SECRET))
    token = jwt.encode(claims(str(user_id)), None, algorithm="none")
    assert token.count(".") == 2 and token.endswith(".")
    assert (await refused(auth, token)).startswith("invalid JWT: ")


async def test_an_hs256_jwt_keyed_with_the_public_key_is_refused(sqlite_store, user_id,
                                                                 public_key_file):
    # Algorithm confusion: HMAC with the (public) PEM as the secret must not pass as RS256.
    auth = Authenticator(sqlite_store, Settings(jwt_public_key_file=str(public_key_file)))
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims(str(user_id))).encode())
    mac = hmac.new(public_key_file.read_bytes(), f"{header}.{body}".encode(), hashlib.sha256)
    token = f"{header}.{body}.{b64(mac.digest())}"
    assert (await refused(auth, token)).startswith("invalid JWT: ")


@pytest.mark.parametrize("sub", ["abc", "0", "-1", "1.0", " 1", str(2**63), ""])
async def test_a_jwt_whose_sub_is_not_a_user_id_is_refused(sqlite_store, rsa_key,
                                                           public_key_file, sub):
    auth = Authenticator(sqlite_store, Settings(jwt_public_key_file=str(public_key_file)))
    token = jwt.encode(claims(sub), rsa_key, algorithm="RS256")
    assert await refused(auth, token) == "JWT sub is not a user id"


async def test_a_jwt_whose_sub_is_a_number_not_a_string_is_refused(sqlite_store, user_id,
                                                                   rsa_key, public_key_file):
    auth = Authenticator(sqlite_store, Settings(jwt_public_key_file=str(public_key_file)))
    token = jwt.encode(claims(user_id), rsa_key, algorithm="RS256")
    with pytest.raises(AuthError):
        await auth.verify(token)


async def test_a_jwt_whose_sub_has_unicode_digits_is_refused(sqlite_store, rsa_key,
                                                             public_key_file):
    auth = Authenticator(sqlite_store, Settings(jwt_public_key_file=str(public_key_file)))
    token = jwt.encode(claims("²"), rsa_key, algorithm="RS256")
    assert await refused(auth, token) == "JWT sub is not a user id"


async def test_jwts_without_exp_or_sub_expired_or_for_unknown_users_are_refused(
        sqlite_store, user_id, rsa_key, public_key_file):
    auth = Authenticator(sqlite_store, Settings(jwt_public_key_file=str(public_key_file)))
    no_exp = jwt.encode({"sub": str(user_id)}, rsa_key, algorithm="RS256")
    assert "exp" in await refused(auth, no_exp)
    no_sub = jwt.encode({"exp": int(time.time()) + 60}, rsa_key, algorithm="RS256")
    assert "sub" in await refused(auth, no_sub)
    expired = jwt.encode({"sub": str(user_id), "exp": int(time.time()) - 5}, rsa_key,
                         algorithm="RS256")
    assert await refused(auth, expired) == "token expired"
    stranger = jwt.encode(claims("424242"), rsa_key, algorithm="RS256")
    assert await refused(auth, stranger) == "unknown user"


async def test_with_both_keys_configured_either_kind_of_jwt_authenticates(
        sqlite_store, user_id, rsa_key, public_key_file):
    auth = Authenticator(sqlite_store, Settings(jwt_secret=SECRET,
                                                jwt_public_key_file=str(public_key_file)))
    hs = jwt.encode(claims(str(user_id)), SECRET, algorithm="HS256")
    rs = jwt.encode(claims(str(user_id)), rsa_key, algorithm="RS256")
    assert (await auth.verify(hs)).user_id == (await auth.verify(rs)).user_id == user_id
    # An opaque token still works alongside JWTs.
    opaque, _ = await auth.issue(user_id)
    assert (await auth.verify(opaque)).user_id == user_id


def test_a_missing_public_key_file_fails_at_construction(tmp_path):
    with pytest.raises(OSError):
        Authenticator(None, Settings(jwt_public_key_file=str(tmp_path / "none.pem")))


async def test_last_used_at_is_recorded_at_most_every_30_seconds(sqlite_store):
    from tidings.auth.tokens import TOUCH_INTERVAL_MS, Authenticator
    from tidings.config import Settings

    user = await sqlite_store.create_user("toucher", "!")
    auth = Authenticator(sqlite_store, Settings())
    token, _ = await auth.issue(user.id)
    await auth.verify(token)
    first = (await sqlite_store.get_token(hash_token(token))).last_used_at
    await auth.verify(token)
    assert (await sqlite_store.get_token(hash_token(token))).last_used_at == first
    row = await sqlite_store.get_token(hash_token(token))
    await sqlite_store.touch_token(row.id, first - TOUCH_INTERVAL_MS)  # as if long ago
    await auth.verify(token)
    assert (await sqlite_store.get_token(hash_token(token))).last_used_at >= first
