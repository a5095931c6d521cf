"""An identity provider's JSON Web Key Set (``jwks_url``), fetched and kept.

The set is fetched on first use and again when it is older than ``jwks_cache_ttl``.
A token whose ``kid`` is not in the set fetches it at once — that is how a provider's
key rotation is picked up — but at most once per :data:`MIN_REFETCH` seconds, so a
stream of tokens with made-up kids costs the provider one request a second, not one
each. A failed fetch keeps the keys already known (logged); with none known, tokens
are refused with the reason. Parsing the set and the keys is PyJWT's
(``PyJWKSet``); only asymmetric keys are used (an ``oct`` key in a public set would
let anyone who read it sign tokens).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import jwt

log = logging.getLogger(__name__)

MIN_REFETCH = 1.0
"""Seconds between two fetches caused by unknown kids."""
FETCH_TIMEOUT = 5.0
"""Seconds the provider has to answer."""
_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                         "ES384", "ES512", "ES256K", "EdDSA"})


class JwtError(Exception):
    """A JWT is refused; the message says why in words."""


class JwksCache:
    """The keys of one JWKS URL, by ``kid``."""

    def __init__(self, url: str, ttl: float) -> None:
        self.url = url
        self.ttl = ttl
        self.fetches = 0  # how many times the set was fetched (tests, logs)
        self._keys: dict[str | None, tuple[Any, str]] = {}
        self._fetched_at = float("-inf")  # monotonic time of the last good fetch
        self._tried_at = float("-inf")  # of the last attempt, good or not
        self._error = ""
        self._lock = asyncio.Lock()

    async def keys(self, kid: str | None) -> list[tuple[Any, str]]:
        """The (key, algorithm) pairs that may verify a token with ``kid`` (None: any)."""
        now = time.monotonic()
        stale = now - self._fetched_at > self.ttl
        unknown = kid is not None and kid not in self._keys
        if (stale or unknown) and now - self._tried_at >= MIN_REFETCH:
            await self._refresh(now)
        if kid is not None:
            found = self._keys.get(kid)
            if found is None:
                why = f" (fetching it failed: {self._error})" if self._error else ""
                raise JwtError(f"no key with kid {kid!r} in the JWKS at {self.url}{why}")
            return [found]
        return list(self._keys.values())

    async def _refresh(self, asked_at: float) -> None:
        async with self._lock:
            if self._tried_at >= asked_at:  # another caller fetched it meanwhile
                return
            self._tried_at = time.monotonic()
            try:
                self._keys = await self._fetch()
            except Exception as exc:
                self._error = str(exc) or type(exc).__name__
                log.warning("fetching the JWKS at %s failed: %s", self.url, self._error)
                return
            self._error = ""
            self._fetched_at = time.monotonic()
            self.fetches += 1

    async def _fetch(self) -> dict[str | None, tuple[Any, str]]:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(self.url, headers={"Accept": "application/json"}) as rsp:
            if rsp.status != 200:
                raise ValueError(f"HTTP {rsp.status}")
            data = await rsp.json(content_type=None)
        try:
            found = jwt.PyJWKSet.from_dict(data)
        except (jwt.PyJWTError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a JWKS: {exc}") from None
        keys: dict[str | None, tuple[Any, str]] = {}
        for jwk in found.keys:
            alg = jwk.algorithm_name
            if alg in _ASYMMETRIC:
                keys[jwk.key_id] = (jwk.key, alg)
        if not keys:
            raise ValueError("the JWKS has no RSA, EC or OKP signing key")
        return keys
