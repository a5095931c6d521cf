"""JWTs Tidings issues (HS256, RS256, ES256, EdDSA), aud/iss/leeway, and refresh-token
rotation with reuse detection, against a real SQLite store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tidings.auth import Authenticator, AuthError
from tidings.auth.refresh import REFRESH_PREFIX, RefreshTokens
from tidings.config import Settings, SettingsError, load_settings
from tidings.store.base import now_ms

SECRET = "an-hs256-secret-of-32-bytes-min!"

KEYS: dict[str, Any] = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


def pem_file(tmp_path: Path, key: Any, name: str = "key.pem") -> str:
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


@pytest.fixture
async def user_id(sqlite_store) -> int:
    return (await sqlite_store.create_user("alice", "!no-password")).id


def pair_maker(store, settings: Settings) -> tuple[Authenticator, RefreshTokens]:
    auth = Authenticator(store, settings)
    return auth, RefreshTokens(store, auth.jwt, settings.refresh_token_ttl)


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256", "EdDSA"])
async def test_each_algorithm_issues_a_jwt_that_verifies(sqlite_store, user_id, tmp_path, alg):
    if alg == "HS256":
        settings = Settings(jwt_secret=SECRET, jwt_ttl=120)
    else:
        settings = Settings(jwt_private_key_file=pem_file(tmp_path, KEYS[alg]()), jwt_ttl=120,
                            jwt_key_id="k1")
    auth, tokens = pair_maker(sqlite_store, settings)
    assert auth.jwt.algorithm == alg
    pair = await tokens.issue(user_id, device_id="phone", scopes=("subscribe:room:*",))
    header = jwt.get_unverified_header(pair.access_token)
    assert header["alg"] == alg and header.get("kid") == (None if alg == "HS256" else "k1")
    assert now_ms() + 110_000 <= pair.expires_at <= now_ms() + 121_000
    identity = await auth.verify(pair.access_token)
    assert (identity.user_id, identity.device_id, identity.scopes, identity.expires_at) == (
        user_id, "phone", ("subscribe:room:*",), pair.expires_at)
    assert pair.refresh_token.startswith(REFRESH_PREFIX)
    # A refresh token is not an access token.
    with pytest.raises(AuthError, match="unknown token format"):
        await auth.verify(pair.refresh_token)


async def test_an_algorithm_no_key_has_and_an_unusable_key_stop_start_up(sqlite_store, tmp_path):
    ed = pem_file(tmp_path, KEYS["EdDSA"]())
    with pytest.raises(ValueError, match="jwt_algorithm RS256 needs a jwt_private_key_file "
                                         "of its type; the key set is for EdDSA"):
        Authenticator(sqlite_store, Settings(jwt_private_key_file=ed, jwt_algorithm="RS256"))
    with pytest.raises(ValueError, match="jwt_algorithm HS256 needs jwt_secret"):
        Authenticator(sqlite_store, Settings(jwt_private_key_file=ed, jwt_algorithm="HS256"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ValueError, match=r"jwt_private_key_file .* is not a usable PEM private"):
        Authenticator(sqlite_store, Settings(jwt_private_key_file=str(junk)))
    p384 = pem_file(tmp_path, ec.generate_private_key(ec.SECP384R1()), "p384.pem")
    with pytest.raises(ValueError, match="secp384r1 is not P-256"):
        Authenticator(sqlite_store, Settings(jwt_private_key_file=p384))
    # With both a secret and a key, jwt_algorithm picks; empty means the key's.
    both = Authenticator(sqlite_store, Settings(jwt_secret=SECRET, jwt_private_key_file=ed))
    assert both.jwt.algorithm == "EdDSA"
    hs = Authenticator(sqlite_store, Settings(jwt_secret=SECRET, jwt_private_key_file=ed,
                                              jwt_algorithm="HS256"))
    assert hs.jwt.algorithm == "HS256"
    assert not Authenticator(sqlite_store, Settings()).jwt.can_issue


def test_jwt_settings_are_checked_in_words(tmp_path):
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={"TIDINGS_JWT_ALGORITHM": "none", "TIDINGS_JWT_LEEWAY": "301",
                               "TIDINGS_JWKS_URL": "ftp://x/jwks", "TIDINGS_JWT_TTL": "0",
                               "TIDINGS_JWT_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem")})
    text = "\n".join(exc.value.problems)
    for name in ("jwt_algorithm", "jwt_leeway", "jwt_ttl"):
        assert f"invalid setting {name} = " in text, text
    # Type errors come first; the rules (URL scheme, file) then speak for the rest.
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={"TIDINGS_JWKS_URL": "ftp://x/jwks",
                               "TIDINGS_JWT_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem")})
    text = "\n".join(exc.value.problems)
    assert "jwks_url = 'ftp://x/jwks' (from env TIDINGS_JWKS_URL): has scheme ftp://" in text
    assert "jwt_private_key_file" in text and "does not exist" in text
    ok = load_settings(environ={"TIDINGS_JWT_ALGORITHM": "EdDSA", "TIDINGS_JWT_LEEWAY": "5",
                                "TIDINGS_JWKS_URL": "https://id.example.com/jwks.json"})
    assert (ok.jwt_algorithm, ok.jwt_leeway) == ("EdDSA", 5.0)


async def test_audience_issuer_and_leeway_are_enforced(sqlite_store, user_id):
    auth = Authenticator(sqlite_store, Settings(jwt_secret=SECRET, jwt_audience="tidings",
                                                jwt_issuer="https://chat.example", jwt_leeway=30))
    now = int(time.time())
    good = {"sub": str(user_id), "exp": now + 60, "aud": "tidings", "iss": "https://chat.example"}
    assert (await auth.verify(jwt.encode(good, SECRET, algorithm="HS256"))).user_id == user_id
    for change, words in (({"aud": "other"}, "(?i)audience"),
                          ({"iss": "https://evil"}, "(?i)issuer"),
                          ({"aud": None}, "aud"), ({"iss": None}, "iss")):
        claims = {k: v for k, v in {**good, **change}.items() if v is not None}
        with pytest.raises(AuthError, match=words):
            await auth.verify(jwt.encode(claims, SECRET, algorithm="HS256"))
    # 20 s past exp is within the 30 s leeway; 40 s is not.
    late = jwt.encode({**good, "exp": now - 20}, SECRET, algorithm="HS256")
    identity = await auth.verify(late)
    assert identity.expires_at == (now - 20) * 1000
    assert 0 < (auth.seconds_left(identity) or 0) <= 10.5
    with pytest.raises(AuthError, match="token expired"):
        await auth.verify(jwt.encode({**good, "exp": now - 40}, SECRET, algorithm="HS256"))
    # Issued tokens carry aud and iss.
    tokens = RefreshTokens(sqlite_store, auth.jwt, 60)
    claims = jwt.decode((await tokens.issue(user_id)).access_token, SECRET, algorithms=["HS256"],
                        audience="tidings")
    assert (claims["aud"], claims["iss"], claims["sub"]) == ("tidings", "https://chat.example",
                                                             str(user_id))


async def test_a_refresh_rotates_and_a_reused_token_revokes_its_log_in(sqlite_store, user_id):
    _auth, tokens = pair_maker(sqlite_store, Settings(jwt_secret=SECRET))
    first = await tokens.issue(user_id, device_id="d1")
    other_login = await tokens.issue(user_id, device_id="d2")
    second = await tokens.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    third = await tokens.refresh(second.refresh_token)
    # The first token again: refused, and every live token of that log-in is revoked.
    with pytest.raises(AuthError, match="already used or revoked"):
        await tokens.refresh(first.refresh_token)
    with pytest.raises(AuthError, match="already used or revoked"):
        await tokens.refresh(third.refresh_token)
    # Another log-in of the same user is untouched.
    assert (await tokens.refresh(other_login.refresh_token)).user_id == user_id
    for bad, words in (("tdg_abc", "not a refresh token"), (REFRESH_PREFIX + "x" * 43,
                                                            "invalid refresh token")):
        with pytest.raises(AuthError, match=words):
            await tokens.refresh(bad)


async def test_refreshes_racing_with_one_token_leave_no_live_token(sqlite_store, user_id):
    # Two uses of one refresh token are a reuse however they interleave: at most one may
    # get an answer, and whatever it got is revoked with its log-in.
    _auth, tokens = pair_maker(sqlite_store, Settings(jwt_secret=SECRET))
    pair = await tokens.issue(user_id)
    results = await asyncio.gather(*(tokens.refresh(pair.refresh_token) for _ in range(5)),
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) <= 1, results
    assert sum(isinstance(r, AuthError) for r in results) == 5 - len(won)
    for survivor in won:
        with pytest.raises(AuthError, match="already used or revoked"):
            await tokens.refresh(survivor.refresh_token)
    live = [t for t in await sqlite_store.list_tokens(user_id) if t.revoked_at is None]
    assert live == []


async def test_an_expired_refresh_token_is_refused(sqlite_store, user_id):
    auth = Authenticator(sqlite_store, Settings(jwt_secret=SECRET))
    tokens = RefreshTokens(sqlite_store, auth.jwt, ttl=0.001)
    pair = await tokens.issue(user_id)
    await asyncio.sleep(0.01)
    with pytest.raises(AuthError, match="refresh token expired"):
        await tokens.refresh(pair.refresh_token)


async def test_without_a_signing_key_nothing_is_issued(sqlite_store, user_id, tmp_path):
    public = tmp_path / "pub.pem"
    public.write_bytes(KEYS["EdDSA"]().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    _auth, tokens = pair_maker(sqlite_store, Settings(jwt_public_key_file=str(public)))
    assert not tokens.available
    with pytest.raises(AuthError, match="no JWT signing key"):
        await tokens.issue(user_id)


def _hs256(handler: Any) -> None:
    jwt.unregister_algorithm("HS256")
    jwt.register_algorithm("HS256", handler)


async def test_an_hs256_secret_is_prepared_once_and_an_asymmetric_one_still_refused(
        sqlite_store, user_id, tmp_path, monkeypatch):
    from jwt.algorithms import HMACAlgorithm

    from tidings.auth.jwt_keys import PreparedHmac

    before = jwt.get_algorithm_by_name("HS256")
    _hs256(HMACAlgorithm(HMACAlgorithm.SHA256))  # PyJWT's own, as in a fresh process
    try:
        secret = SECRET + "-prepared-once"
        auth = Authenticator(sqlite_store, Settings(jwt_secret=secret))
        handler = jwt.get_algorithm_by_name("HS256")
        assert isinstance(handler, PreparedHmac)  # JwtKeys installed it
        for n in range(10):  # other secrets seen before (a test suite's)
            handler.prepare_key(f"{SECRET}-{n}")
        assert len(handler._prepared) <= 8  # the memory stays small
        with pytest.raises(TypeError, match="Expected a string or bytes"):  # PyJWT's words
            handler.prepare_key(bytearray(b"k" * 32))
        checks: list[object] = []
        check = HMACAlgorithm.prepare_key
        monkeypatch.setattr(HMACAlgorithm, "prepare_key",
                            lambda self, key: checks.append(key) or check(self, key))
        for _ in range(3):
            token, _exp = auth.jwt.issue(user_id)
            assert (await auth.verify(token)).user_id == user_id
        assert checks == [secret]
        # A PEM key given as an HMAC secret is still refused, every time, in PyJWT's words.
        pem = Path(pem_file(tmp_path, KEYS["RS256"]())).read_bytes()
        for _ in range(2):
            with pytest.raises(jwt.InvalidKeyError, match="asymmetric key"):
                jwt.decode(token, pem, algorithms=["HS256"])
    finally:
        _hs256(before)
