"""Password hashing with argon2id, off the event loop (a hash takes ~50 ms)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Verifying against this keeps the time of "unknown user" equal to "bad password".
_DUMMY_HASH = _hasher.hash("tidings-timing-equaliser")


async def hash_password(password: str) -> str:
    """Return an argon2id hash of ``password``."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; a None hash costs the same time and is False."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)
