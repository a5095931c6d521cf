"""``jwks_url``: a real identity provider's key set served over HTTP on 127.0.0.1, keys
rotated by ``kid``, caching, and a provider that goes down."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tidings.auth import Authenticator, AuthError
from tidings.auth.jwks import MIN_REFETCH
from tidings.config import Settings


class Provider:
    """An identity provider: signs tokens and publishes its current keys."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.requests = 0
        self.down = False
        self.url = ""

    def add(self, kid: str, key: Any) -> None:
        self.keys[kid] = key

    def sign(self, kid: str, user_id: int, alg: str) -> str:
        return jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 60},
                          self.keys[kid], algorithm=alg, headers={"kid": kid})

    async def jwks(self, _request: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.Response(status=503)
        found = []
        for kid, key in self.keys.items():
            algo: Any = jwt.get_algorithm_by_name(
                "RS256" if isinstance(key, rsa.RSAPrivateKey) else
                "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA")
            jwk = json.loads(algo.to_jwk(key.public_key()))
            found.append({**jwk, "kid": kid, "use": "sig"})
        # An HMAC key in a public set must never be used to verify.
        found.append({"kty": "oct", "kid": "oct", "k": "c" * 43, "alg": "HS256"})
        return web.json_response({"keys": found})


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    idp = Provider()
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", idp.jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    idp.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    try:
        yield idp
    finally:
        await runner.cleanup()


@pytest.fixture
async def user_id(sqlite_store) -> int:
    return (await sqlite_store.create_user("alice", "!no-password")).id


async def test_tokens_verify_by_kid_and_a_rotation_is_picked_up_at_once(
        sqlite_store, user_id, provider):
    provider.add("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    auth = Authenticator(sqlite_store, Settings(jwks_url=provider.url, jwks_cache_ttl=3600))
    assert (await auth.verify(provider.sign("rsa-1", user_id, "RS256"))).user_id == user_id
    for _ in range(5):  # cached: no more requests
        await auth.verify(provider.sign("rsa-1", user_id, "RS256"))
    assert provider.requests == 1
    # The provider rotates: a new EC key, and later an Ed25519 one; the old one goes.
    provider.add("ec-2", ec.generate_private_key(ec.SECP256R1()))
    assert auth.jwt.jwks is not None
    auth.jwt.jwks._tried_at -= MIN_REFETCH  # the last fetch was a second ago
    assert (await auth.verify(provider.sign("ec-2", user_id, "ES256"))).user_id == user_id
    assert provider.requests == 2
    old = provider.keys.pop("rsa-1")
    provider.add("ed-3", ed25519.Ed25519PrivateKey.generate())
    auth.jwt.jwks._tried_at -= MIN_REFETCH
    assert (await auth.verify(provider.sign("ed-3", user_id, "EdDSA"))).user_id == user_id
    provider.keys["rsa-1"] = old
    stale = provider.sign("rsa-1", user_id, "RS256")
    del provider.keys["rsa-1"]
    with pytest.raises(AuthError, match="no key with kid 'rsa-1'"):
        await auth.verify(stale)  # the set no longer has it
    # An HS256 token "signed" with the set's oct key is refused.
    forged = jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 60}, "s" * 32,
                        algorithm="HS256", headers={"kid": "oct"})
    with pytest.raises(AuthError, match="no key with kid 'oct'"):
        await auth.verify(forged)


async def test_unknown_kids_fetch_at_most_once_a_second(sqlite_store, user_id, provider):
    provider.add("k1", ec.generate_private_key(ec.SECP256R1()))
    auth = Authenticator(sqlite_store, Settings(jwks_url=provider.url))
    await auth.verify(provider.sign("k1", user_id, "ES256"))
    provider.add("made-up", ec.generate_private_key(ec.SECP256R1()))
    token = provider.sign("made-up", user_id, "ES256")
    del provider.keys["made-up"]
    for _ in range(20):
        with pytest.raises(AuthError, match="no key with kid 'made-up'"):
            await auth.verify(token)
    assert provider.requests <= 2  # the first fetch, and at most one for the unknown kid


async def test_a_provider_that_goes_down_keeps_the_known_keys(sqlite_store, user_id, provider):
    provider.add("k1", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    auth = Authenticator(sqlite_store, Settings(jwks_url=provider.url, jwks_cache_ttl=0.001))
    await auth.verify(provider.sign("k1", user_id, "RS256"))
    provider.down = True
    assert auth.jwt.jwks is not None
    # Stale and due for a fetch (the TTL alone may not have run out: a warm verify
    # comes back in less than its millisecond).
    auth.jwt.jwks._fetched_at -= MIN_REFETCH
    auth.jwt.jwks._tried_at -= MIN_REFETCH
    assert (await auth.verify(provider.sign("k1", user_id, "RS256"))).user_id == user_id
    assert provider.requests == 2  # it asked, failed, and used what it had
    provider.add("k2", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    auth.jwt.jwks._tried_at -= MIN_REFETCH
    with pytest.raises(AuthError, match=r"no key with kid 'k2'.*fetching it failed: HTTP 503"):
        await auth.verify(provider.sign("k2", user_id, "RS256"))


async def test_a_provider_never_reached_refuses_with_the_reason(sqlite_store, user_id):
    auth = Authenticator(sqlite_store, Settings(jwks_url="http://127.0.0.1:9/jwks.json"))
    token = jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 60},
                       ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                       headers={"kid": "k"})
    with pytest.raises(AuthError, match="fetching it failed"):
        await auth.verify(token)
