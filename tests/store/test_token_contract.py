"""The access-token part of the Store contract (seed 003), on every backend."""

from __future__ import annotations

from tidings.store import Store


async def test_scopes_and_device_info_are_stored(store: Store) -> None:
    user = await store.create_user("alice", "h")
    token = await store.create_token(user.id, "th-1", name="ci", scopes=("publish:room:*",),
                                     device_info={"platform": "linux"})
    assert token.scopes == ("publish:room:*",)
    assert token.device_info == {"platform": "linux"}
    assert await store.get_token("th-1") == token
    assert await store.get_token_by_id(token.id) == token
    plain = await store.create_token(user.id, "th-2")
    assert plain.scopes is None and plain.device_info == {}
    empty = await store.create_token(user.id, "th-3", scopes=())
    assert empty.scopes == ()


async def test_list_tokens_shows_a_users_tokens_newest_first(store: Store) -> None:
    alice = await store.create_user("alice", "h")
    bob = await store.create_user("bob", "h")
    a1 = await store.create_token(alice.id, "a1")
    a2 = await store.create_token(alice.id, "a2")
    await store.create_token(bob.id, "b1")
    assert [t.id for t in await store.list_tokens(alice.id)] == [a2.id, a1.id]
    assert await store.get_token_by_id(99999) is None


async def test_update_token_changes_the_editable_fields(store: Store) -> None:
    user = await store.create_user("alice", "h")
    token = await store.create_token(user.id, "th-1", name="old")
    changed = type(token)(**{**{f: getattr(token, f) for f in token.__struct_fields__},
                             "name": "new", "scopes": ("admin",), "expires_at": 42,
                             "device_id": "desk", "device_info": {"os": "x"},
                             "token_hash": "ignored"})
    assert await store.update_token(changed) is True
    stored = await store.get_token_by_id(token.id)
    assert stored is not None
    assert (stored.name, stored.scopes, stored.expires_at, stored.device_id,
            stored.device_info, stored.token_hash) == ("new", ("admin",), 42, "desk",
                                                       {"os": "x"}, "th-1")
    missing = type(token)(**{**{f: getattr(token, f) for f in token.__struct_fields__},
                             "id": 99999})
    assert await store.update_token(missing) is False


async def test_revoke_tokens_revokes_only_the_owners_live_tokens(store: Store) -> None:
    alice = await store.create_user("alice", "h")
    bob = await store.create_user("bob", "h")
    a1 = await store.create_token(alice.id, "a1")
    a2 = await store.create_token(alice.id, "a2")
    b1 = await store.create_token(bob.id, "b1")
    assert await store.revoke_tokens(alice.id, [a2.id, b1.id, a1.id, 99999], 7000) == [
        a1.id, a2.id]
    assert await store.revoke_tokens(alice.id, [a1.id], 8000) == []
    assert (await store.get_token("b1")).revoked_at is None  # type: ignore[union-attr]
    assert await store.revoke_tokens(None, [b1.id], 9000) == [b1.id]  # an admin: any user


async def test_tokens_revoked_since_lists_recent_revocations(store: Store) -> None:
    user = await store.create_user("alice", "h")
    t1 = await store.create_token(user.id, "t1")
    t2 = await store.create_token(user.id, "t2")
    await store.create_token(user.id, "t3")
    await store.revoke_tokens(user.id, [t1.id], 1000)
    await store.revoke_tokens(user.id, [t2.id], 2000)
    assert await store.tokens_revoked_since(1500) == [t2.id]
    assert await store.tokens_revoked_since(0) == [t1.id, t2.id]
