"""JWTs: the keys that sign and verify them, and the claims checked.

Signing and verifying are PyJWT's (with ``cryptography`` for the asymmetric keys);
this module only decides which key and algorithm apply:

* ``jwt_secret`` — HS256, both ways.
* ``jwt_private_key_file`` — a PEM private key whose type names the algorithm (RSA:
  RS256, EC P-256: ES256, Ed25519: EdDSA); it signs the JWTs Tidings issues and its
  public half verifies them.
* ``jwt_public_key_file`` — verify only (an identity provider's key).
* ``jwks_url`` — verify with the provider's current keys, chosen by ``kid`` (jwks.py).

``jwt_algorithm`` picks the algorithm Tidings issues with when both a secret and a key
are set, and must agree with the key's type. ``jwt_audience``/``jwt_issuer``, when set,
go into issued tokens and are required of every token verified; ``jwt_leeway`` is the
clock difference allowed on ``exp``/``nbf``/``iat``.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import HMACAlgorithm

from tidings.auth.jwks import JwksCache, JwtError
from tidings.config import Settings

ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")

Key = Any  # a str/bytes secret or a cryptography key object

# Errors raised before the claims are looked at: another configured key may verify it.
_OTHER_KEY_MAY_FIT = (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError)

__all__ = ["ALGORITHMS", "JwtError", "JwtKeys", "PreparedHmac", "key_algorithm"]


class PreparedHmac(HMACAlgorithm):
    """PyJWT's HS256, preparing each secret once.

    PyJWT (2.10 and later) checks on every token that its secret is not an asymmetric
    key (PEM, SSH, DER or JSON; the DER check is two ``cryptography`` parses that
    raise). The answer for one secret never changes, and on a serving node, where every
    connect's code runs cold, the check took ~35 µs of a ~500 µs Socket.IO connect.
    Secrets that fail the check are not remembered: they fail again, in the same words.
    """

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        # By type and value: a str never compares equal to bytes (nor warns, under -bb).
        self._prepared: dict[tuple[type, str | bytes], bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        """The secret as bytes, checked the first time it is seen."""
        if type(key) not in (str, bytes):  # PyJWT's own answer, in its own words
            return super().prepare_key(key)
        seen = (type(key), key)
        prepared = self._prepared.get(seen)
        if prepared is None:
            prepared = super().prepare_key(key)
            if len(self._prepared) >= 8:  # a node has one secret; a test suite, many
                self._prepared.clear()
            self._prepared[seen] = prepared
        return prepared


_REGISTERING = threading.Lock()


def use_prepared_hmac() -> None:
    """Make :class:`PreparedHmac` PyJWT's HS256 (its public algorithm registry; once)."""
    with _REGISTERING:  # two callers at once would both unregister, and one fail
        if not isinstance(jwt.get_algorithm_by_name("HS256"), PreparedHmac):
            jwt.unregister_algorithm("HS256")
            jwt.register_algorithm("HS256", PreparedHmac())


def key_algorithm(key: object) -> str:
    """The algorithm a cryptography key object signs with, or ValueError."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ES256"
        raise ValueError(f"EC curve {key.curve.name} is not P-256 (ES256)")
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ValueError(f"a {type(key).__name__} cannot sign JWTs (RSA, EC P-256 or Ed25519)")


def _load(path: str, *, private: bool) -> tuple[Key, str]:
    setting = "jwt_private_key_file" if private else "jwt_public_key_file"
    try:
        data = Path(path).read_bytes()
        key: Any = (serialization.load_pem_private_key(data, password=None) if private
                    else serialization.load_pem_public_key(data))
        return key, key_algorithm(key)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{setting} {path!r} is not a usable PEM "
                         f"{'private' if private else 'public'} key: {exc}") from None


class JwtKeys:
    """What signs the JWTs Tidings issues and what verifies the ones it is shown."""

    def __init__(self, settings: Settings) -> None:
        self._verify: list[tuple[Key, str]] = []
        self.kid = settings.jwt_key_id or None
        self.audience = settings.jwt_audience or None
        self.issuer = settings.jwt_issuer or None
        self.leeway = settings.jwt_leeway
        self.ttl = settings.jwt_ttl
        wanted = settings.jwt_algorithm
        signers: dict[str, Key] = {}
        if settings.jwt_secret:
            use_prepared_hmac()
            signers["HS256"] = settings.jwt_secret
            self._verify.append((settings.jwt_secret, "HS256"))
        if settings.jwt_private_key_file:
            key, alg = _load(settings.jwt_private_key_file, private=True)
            signers[alg] = key
            self._verify.append((key.public_key(), alg))
        if settings.jwt_public_key_file:
            key, alg = _load(settings.jwt_public_key_file, private=False)
            self._verify.append((key, alg))
        if wanted and wanted not in signers and signers:
            raise ValueError(f"jwt_algorithm {wanted} needs "
                             + ("jwt_secret" if wanted == "HS256" else
                                f"a jwt_private_key_file of its type; the key set is for "
                                f"{', '.join(a for a in signers if a != 'HS256') or 'none'}"))
        # Issue with the algorithm asked for, else the private key's, else the secret's.
        self.algorithm: str | None = wanted if wanted in signers else next(
            (a for a in ("RS256", "ES256", "EdDSA", "HS256") if a in signers), None)
        self._signing_key = signers.get(self.algorithm) if self.algorithm else None
        self.jwks = JwksCache(settings.jwks_url, settings.jwks_cache_ttl) \
            if settings.jwks_url else None

    @property
    def enabled(self) -> bool:
        """True if any JWT can be verified."""
        return bool(self._verify) or self.jwks is not None

    @property
    def can_issue(self) -> bool:
        """True if a signing key is configured."""
        return self._signing_key is not None

    def issue(self, user_id: int, *, device_id: str | None = None,
              scopes: tuple[str, ...] | None = None, ttl: float | None = None) -> tuple[str, int]:
        """A signed JWT for ``user_id``; return it and its ``exp`` in ms."""
        if self._signing_key is None or self.algorithm is None:
            raise JwtError("no JWT signing key is configured (jwt_secret or "
                           "jwt_private_key_file)")
        now = int(time.time())
        exp = now + max(1, round(self.ttl if ttl is None else ttl))
        claims: dict[str, Any] = {"sub": str(user_id), "iat": now, "exp": exp,
                                  "jti": secrets.token_urlsafe(12)}
        if device_id:
            claims["device_id"] = device_id
        if scopes is not None:
            claims["scopes"] = list(scopes)
        if self.audience:
            claims["aud"] = self.audience
        if self.issuer:
            claims["iss"] = self.issuer
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm,
                          headers=headers), exp * 1000

    async def decode(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; raise :class:`JwtError` saying why not."""
        candidates, kid = self._verify, None
        if self.jwks is not None:  # only a JWKS needs the header first, for its kid
            try:
                kid = jwt.get_unverified_header(token).get("kid")
            except jwt.InvalidTokenError as exc:
                raise JwtError(f"invalid JWT: {exc}") from None
            candidates = candidates + await self.jwks.keys(kid if isinstance(kid, str)
                                                           else None)
        if not candidates:
            raise JwtError(f"no key verifies JWTs with kid {kid!r}")
        last: Exception | None = None
        required = ["exp", "sub"] + (["aud"] if self.audience else []) + \
            (["iss"] if self.issuer else [])
        for key, alg in candidates:
            try:
                return jwt.decode(token, key, algorithms=[alg], audience=self.audience,
                                  issuer=self.issuer, leeway=self.leeway,
                                  options={"require": required})
            except jwt.ExpiredSignatureError:
                raise JwtError("token expired") from None
            except _OTHER_KEY_MAY_FIT as exc:
                last = exc  # another key may fit
            except jwt.InvalidTokenError as exc:
                # The signature was good (or the token is malformed for every key):
                # the claim it fails is the answer.
                raise JwtError(f"invalid JWT: {exc}") from None
        raise JwtError(f"invalid JWT: {last}")
