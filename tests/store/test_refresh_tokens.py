"""Refresh tokens rotate and a reused one revokes its log-in on every store backend
(they live in the token table: auth/refresh.py)."""

from __future__ import annotations

import asyncio

import pytest

from tidings.auth import Authenticator, AuthError
from tidings.auth.refresh import RefreshTokens
from tidings.config import Settings
from tidings.store.base import Store

SECRET = "an-hs256-secret-of-32-bytes-min!"


async def test_rotation_and_reuse_on_each_store(store: Store) -> None:
    user = await store.create_user("rita", "!no-password")
    auth = Authenticator(store, Settings(jwt_secret=SECRET))
    tokens = RefreshTokens(store, auth.jwt, 60)
    first = await tokens.issue(user.id, device_id="d", scopes=("subscribe:room:*",))
    second = await tokens.refresh(first.refresh_token)
    identity = await auth.verify(second.access_token)
    assert (identity.user_id, identity.device_id, identity.scopes) == (
        user.id, "d", ("subscribe:room:*",))
    with pytest.raises(AuthError, match="already used"):
        await tokens.refresh(first.refresh_token)
    with pytest.raises(AuthError, match="already used"):
        await tokens.refresh(second.refresh_token)  # revoked with its log-in
    # Racing uses of one token leave no live token behind.
    pair = await tokens.issue(user.id)
    results = await asyncio.gather(*(tokens.refresh(pair.refresh_token) for _ in range(3)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) <= 1
    assert [t.id for t in await store.list_tokens(user.id) if t.revoked_at is None] == []
