"""The admin part of the Store contract (issue 21: update and delete a user, empty a
channel, the audit log), on every backend (``store`` fixture)."""

from __future__ import annotations

import msgspec
import pytest

from tidings.store import Conflict, Store, now_ms
from tidings.store.admin import NewAudit
from tidings.store.channels import NewPublication, Retention

KEEP = Retention(max_count=100, max_age_ms=3_600_000)


async def test_update_user_renames_and_sets_the_password(store: Store) -> None:
    alice = await store.create_user("alice", "h1")
    await store.create_user("bob", "h2")
    assert await store.update_user(alice.id, username="alicia") is True
    assert await store.get_user_by_name("alice") is None
    renamed = await store.get_user_by_name("alicia")
    assert renamed is not None and renamed.id == alice.id and renamed.password_hash == "h1"
    assert await store.update_user(alice.id, password_hash="h9") is True
    changed = await store.get_user(alice.id)
    assert changed is not None and changed.password_hash == "h9"
    assert changed.username == "alicia"
    with pytest.raises(Conflict):
        await store.update_user(alice.id, username="bob")
    still = await store.get_user(alice.id)
    assert still is not None and still.username == "alicia"
    assert await store.update_user(99999, username="x") is False


async def test_delete_user_removes_account_and_tokens_but_keeps_messages(
        store: Store) -> None:
    from tidings.store import NewMessage

    alice = await store.create_user("alice", "h")
    bob = await store.create_user("bob", "h")
    token = await store.create_token(alice.id, "hash-a")
    [sent] = await store.append_messages([NewMessage(alice.id, "phone", bob.id, "text",
                                                     "hello", 1)])
    await store.advance_cursor(alice.id, "phone", sent.message.id)
    assert await store.delete_user(alice.id) is True
    assert await store.get_user(alice.id) is None
    assert await store.get_user_by_name("alice") is None
    assert await store.get_token("hash-a") is None
    assert await store.get_token_by_id(token.id) is None
    assert await store.list_tokens(alice.id) == []
    kept = await store.get_message(sent.message.id)
    assert kept is not None and kept.sender_id == alice.id
    assert await store.delete_user(alice.id) is False
    again = await store.create_user("alice", "h")  # the name is free, the id is new
    assert again.id != alice.id
    assert await store.get_cursor(again.id, "phone") == 0


async def test_clear_channel_removes_history_and_keeps_the_offset(store: Store) -> None:
    pubs = [NewPublication("room:a", "m", f'"{i}"', 1, "d", KEEP) for i in range(3)]
    await store.append_publications(pubs)
    await store.append_publications([NewPublication("room:b", "m", '"x"', 1, "d", KEEP)])
    assert await store.clear_channel("room:a") == 3
    page = await store.read_channel("room:a", 0, 100, 0)
    assert page.publications == [] and page.top_offset == 3
    [after] = await store.append_publications([NewPublication("room:a", "m", '"4"', 1, "d",
                                                              KEEP)])
    assert after.publication is not None and after.publication.offset == 4
    assert len((await store.read_channel("room:b", 0, 100, 0)).publications) == 1
    assert await store.clear_channel("room:never") == 0


async def test_audit_log_lists_newest_first_filtered_and_paged(store: Store) -> None:
    at = now_ms()
    added = [await store.audit_add(NewAudit(at + i, 7, "root", action, f"user:{i}",
                                            msgspec.json.encode({"i": i}).decode(),
                                            "127.0.0.1"))
             for i, action in enumerate(["user.disconnect", "token.create", "user.delete",
                                         "userx.other", "token.revoke"])]
    assert [e.id for e in added] == sorted({e.id for e in added})
    every = await store.audit_list(100)
    assert [e.id for e in every] == [e.id for e in reversed(added)]
    first = every[-1]
    assert (first.at, first.actor_id, first.actor, first.action, first.target,
            first.remote) == (at, 7, "root", "user.disconnect", "user:0", "127.0.0.1")
    assert first.to_json()["details"] == {"i": 0}
    users = await store.audit_list(100, action="user")
    assert [e.action for e in users] == ["user.delete", "user.disconnect"]
    assert [e.action for e in await store.audit_list(100, action="token.create")] \
        == ["token.create"]
    page = await store.audit_list(2)
    assert [e.id for e in page] == [added[4].id, added[3].id]
    rest = await store.audit_list(10, before=page[-1].id)
    assert [e.id for e in rest] == [added[2].id, added[1].id, added[0].id]
