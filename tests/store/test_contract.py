"""The Store contract, run against every backend through the ``store`` fixture."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tidings.store import (
    Conflict,
    NewMessage,
    Receipt,
    Store,
    StoredMessage,
    StoreError,
    now_ms,
    open_store,
)
from tidings.store.migrate import list_migrations

if TYPE_CHECKING:
    from tidings.store.postgres import PostgresStore

ALICE, BOB, CAROL = 1, 2, 3


def msg(sender: int = ALICE, recipient: int = BOB, *, device: str = "phone", seq: int = 0,
        content: str = "hi", type_: str = "text") -> NewMessage:
    return NewMessage(sender_id=sender, sender_device=device, recipient_id=recipient,
                      type=type_, content=content, client_seq=seq)


async def send(store: Store, *messages: NewMessage) -> list[StoredMessage]:
    results = await store.append_messages(list(messages))
    assert not any(r.duplicate for r in results)
    return [r.message for r in results]


def ids(messages: list[StoredMessage]) -> list[int]:
    return [m.id for m in messages]


# migrations and opening


async def test_migrate_again_applies_nothing(store: Store) -> None:
    assert await store.migrate() == []


async def test_migrations_survive_reopening_the_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reopen.db'}"
    first = open_store(url)
    assert await first.migrate() == [m.name for m in list_migrations("sqlite")]
    user = await first.create_user("alice", "h")
    await first.close()

    second = open_store(url)
    try:
        assert await second.migrate() == []
        assert await second.get_user(user.id) == user
    finally:
        await second.close()


def test_open_store_rejects_an_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("mysql://localhost/tidings")


def test_open_store_accepts_both_postgres_schemes() -> None:
    # Opening connects nothing yet, so no server is needed.
    for url in ("postgresql://u@127.0.0.1:1/db", "postgres://u@127.0.0.1:1/db"):
        assert type(open_store(url)).__name__ == "PostgresStore"


async def test_ping_succeeds_on_a_reachable_database(store: Store) -> None:
    await store.ping()


async def test_refresh_keeps_the_store_working(store: Store) -> None:
    """Called after a failed ping: statements in flight and after it still work."""
    user = await store.create_user("refreshed", "hash")
    found, _ = await asyncio.gather(store.get_user(user.id), store.refresh())
    assert found == user
    await store.refresh()
    assert await store.get_user(user.id) == user


async def test_a_closed_store_refuses_work(store_url: str) -> None:
    opened = open_store(store_url)
    await opened.migrate()
    await opened.close()
    with pytest.raises(StoreError):
        await opened.get_user(1)


# users


async def test_created_user_is_found_by_id_and_by_name(store: Store) -> None:
    before = now_ms()
    user = await store.create_user("alice", "hash-a")
    assert user.username == "alice" and user.password_hash == "hash-a"
    assert before <= user.created_at <= now_ms()
    assert await store.get_user(user.id) == user
    assert await store.get_user_by_name("alice") == user


async def test_a_taken_username_raises_conflict(store: Store) -> None:
    await store.create_user("alice", "h1")
    with pytest.raises(Conflict):
        await store.create_user("alice", "h2")
    assert (await store.get_user_by_name("alice")).password_hash == "h1"  # type: ignore[union-attr]


async def test_unknown_users_are_none(store: Store) -> None:
    assert await store.get_user(12345) is None
    assert await store.get_user_by_name("nobody") is None


# tokens


async def test_created_token_is_found_by_hash(store: Store) -> None:
    user = await store.create_user("alice", "h")
    token = await store.create_token(user.id, "th-1", name="laptop", device_id="dev-1",
                                     expires_at=now_ms() + 60_000)
    assert (token.user_id, token.token_hash, token.name, token.device_id) == (
        user.id, "th-1", "laptop", "dev-1")
    assert token.revoked_at is None and token.last_used_at is None
    assert await store.get_token("th-1") == token
    assert await store.get_token("unknown") is None


async def test_token_defaults_have_no_device_and_no_expiry(store: Store) -> None:
    user = await store.create_user("alice", "h")
    token = await store.create_token(user.id, "th-1")
    assert (token.name, token.device_id, token.expires_at) == ("", None, None)


async def test_a_token_hash_is_unique(store: Store) -> None:
    user = await store.create_user("alice", "h")
    await store.create_token(user.id, "th-1")
    with pytest.raises(Conflict):
        await store.create_token(user.id, "th-1")


async def test_a_token_for_an_unknown_user_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.create_token(999, "th-1")


async def test_touch_token_records_the_last_use(store: Store) -> None:
    user = await store.create_user("alice", "h")
    token = await store.create_token(user.id, "th-1")
    await store.touch_token(token.id, 1234)
    assert (await store.get_token("th-1")).last_used_at == 1234  # type: ignore[union-attr]


async def test_touch_tokens_records_several_uses(store: Store) -> None:
    user = await store.create_user("alice", "h")
    one = await store.create_token(user.id, "th-1")
    two = await store.create_token(user.id, "th-2")
    await store.touch_tokens([(one.id, 1234), (two.id, 5678)])
    await store.touch_tokens([])
    assert (await store.get_token("th-1")).last_used_at == 1234  # type: ignore[union-attr]
    assert (await store.get_token("th-2")).last_used_at == 5678  # type: ignore[union-attr]


async def test_revoking_a_token_works_once(store: Store) -> None:
    user = await store.create_user("alice", "h")
    token = await store.create_token(user.id, "th-1")
    assert await store.revoke_token(token.id, 5000) is True
    assert await store.revoke_token(token.id, 6000) is False
    revoked = await store.get_token("th-1")
    assert revoked is not None and revoked.revoked_at == 5000
    assert await store.revoke_token(99999, 5000) is False


# appending


async def test_append_assigns_strictly_increasing_ids_in_input_order(store: Store) -> None:
    first = await send(store, *(msg(content=f"m{i}") for i in range(5)))
    second = await send(store, msg(content="later"))
    all_ids = ids(first) + ids(second)
    assert all_ids == sorted(all_ids) and len(set(all_ids)) == len(all_ids)
    assert [m.content for m in first] == [f"m{i}" for i in range(5)]


async def test_appended_message_is_stored_as_sent(store: Store) -> None:
    before = now_ms()
    [stored] = await send(store, msg(device="laptop", seq=7, content="yo", type_="text"))
    assert (stored.sender_id, stored.sender_device, stored.recipient_id, stored.type,
            stored.content, stored.client_seq, stored.status) == (
        ALICE, "laptop", BOB, "text", "yo", 7, "sent")
    assert before <= stored.created_at <= now_ms()
    assert await store.get_message(stored.id) == stored
    assert await store.get_message(stored.id + 1000) is None


async def test_the_last_message_id_is_the_highest_committed(store: Store) -> None:
    assert await store.last_message_id() == 0
    stored = await send(store, *(msg(content=f"m{i}") for i in range(3)))
    assert await store.last_message_id() == stored[-1].id
    await store.append_messages([msg(seq=1, content="once"), msg(seq=1, content="once")])
    [again] = await store.append_messages([msg(seq=1, content="once")])  # burns no id
    assert await store.last_message_id() == again.message.id


async def test_an_empty_batch_stores_nothing(store: Store) -> None:
    assert await store.append_messages([]) == []


async def test_duplicate_client_seq_returns_the_first_message(store: Store) -> None:
    [first] = await send(store, msg(seq=1, content="original"))
    await store.mark_delivered(BOB, first.id)
    [again] = await store.append_messages([msg(seq=1, content="retry")])
    assert again.duplicate is True
    # The earlier message, unchanged: its content and its current status.
    assert again.message == await store.get_message(first.id)
    assert again.message.content == "original" and again.message.status == "delivered"
    assert ids(await store.messages_for_device(BOB, "tablet", 0, 100)) == [first.id]


async def test_duplicate_within_one_batch_resolves_to_the_first(store: Store) -> None:
    results = await store.append_messages([
        msg(seq=1, content="a"), msg(seq=2, content="b"), msg(seq=1, content="a-again"),
        msg(seq=3, content="c"), msg(seq=2, content="b-again")])
    assert [r.duplicate for r in results] == [False, False, True, False, True]
    assert results[2].message == results[0].message
    assert results[4].message == results[1].message
    kept = [results[i].message.id for i in (0, 1, 3)]
    assert kept == sorted(kept)
    assert len(await store.messages_for_device(BOB, "tablet", 0, 100)) == 3


async def test_a_batch_mixing_new_and_old_keeps_input_order(store: Store) -> None:
    [old] = await send(store, msg(seq=5))
    results = await store.append_messages([msg(seq=6), msg(seq=5), msg(seq=7)])
    assert [r.duplicate for r in results] == [False, True, False]
    assert results[1].message == old
    assert old.id < results[0].message.id < results[2].message.id


async def test_client_seq_zero_never_deduplicates(store: Store) -> None:
    results = await store.append_messages([msg(seq=0), msg(seq=0)])
    results += await store.append_messages([msg(seq=0)])
    assert not any(r.duplicate for r in results)
    assert len({r.message.id for r in results}) == 3


async def test_same_client_seq_from_another_device_or_sender_is_new(store: Store) -> None:
    results = await store.append_messages([
        msg(ALICE, BOB, device="phone", seq=1), msg(ALICE, BOB, device="laptop", seq=1),
        msg(CAROL, BOB, device="phone", seq=1)])
    assert not any(r.duplicate for r in results)


async def test_a_failing_batch_stores_nothing(store: Store) -> None:
    bad = NewMessage(ALICE, "phone", BOB, "text", None, 9)  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
        await store.append_messages([msg(seq=1), bad])
    assert await store.messages_for_device(BOB, "tablet", 0, 100) == []
    assert await store.conversation_peers(ALICE) == []
    # The store is still usable, and seq 1 was not burnt by the rolled-back batch.
    [again] = await store.append_messages([msg(seq=1)])
    assert again.duplicate is False


# reading


async def test_device_stream_has_messages_to_the_user_and_from_other_devices(
        store: Store) -> None:
    to_alice = await send(store, msg(BOB, ALICE, content="to alice"))
    from_phone = await send(store, msg(ALICE, BOB, device="phone", content="from phone"))
    from_laptop = await send(store, msg(ALICE, CAROL, device="laptop", content="from laptop"))
    await send(store, msg(BOB, CAROL, content="not alice's"))

    assert ids(await store.messages_for_device(ALICE, "phone", 0, 100)) == ids(
        to_alice + from_laptop)
    assert ids(await store.messages_for_device(ALICE, "laptop", 0, 100)) == ids(
        to_alice + from_phone)
    assert ids(await store.messages_for_device(ALICE, "tablet", 0, 100)) == ids(
        to_alice + from_phone + from_laptop)


async def test_device_stream_pages_with_after_id_and_limit(store: Store) -> None:
    sent = []
    for i in range(7):
        # Alternate directions so both halves of the stream interleave.
        sent += await send(store, msg(BOB, ALICE) if i % 2 else msg(ALICE, BOB, device="laptop"))
    pages: list[int] = []
    after = 0
    while page := await store.messages_for_device(ALICE, "phone", after, 3):
        assert len(page) <= 3
        pages += ids(page)
        after = page[-1].id
    assert pages == ids(sent)
    assert await store.messages_for_device(ALICE, "phone", 0, 0) == []


async def test_history_is_newest_first_and_pages_with_before_id(store: Store) -> None:
    chat = []
    for i in range(5):
        chat += await send(store, msg(ALICE, BOB, content=f"a{i}"), msg(BOB, ALICE,
                                                                         content=f"b{i}"))
    newest = await store.history(ALICE, BOB, None, 4)
    assert ids(newest) == ids(chat)[::-1][:4]
    older = await store.history(ALICE, BOB, newest[-1].id, 100)
    assert ids(older) == ids(chat)[::-1][4:]
    assert await store.history(BOB, ALICE, None, 100) == await store.history(ALICE, BOB, None,
                                                                             100)


async def test_history_holds_only_messages_between_the_two_users(store: Store) -> None:
    between = await send(store, msg(ALICE, BOB))
    await send(store, msg(ALICE, CAROL), msg(CAROL, BOB), msg(CAROL, ALICE))
    between += await send(store, msg(BOB, ALICE, device="tablet"))
    assert ids(await store.history(ALICE, BOB, None, 100)) == ids(between)[::-1]
    assert await store.history(BOB, CAROL, None, 0) == []


async def test_conversation_peers_lists_everyone_exchanged_with(store: Store) -> None:
    await send(store, msg(ALICE, BOB), msg(CAROL, ALICE))
    assert sorted(await store.conversation_peers(ALICE)) == [BOB, CAROL]
    assert await store.conversation_peers(BOB) == [ALICE]
    assert await store.conversation_peers(CAROL) == [ALICE]
    assert await store.conversation_peers(99) == []


async def test_a_duplicate_does_not_create_a_conversation(store: Store) -> None:
    await send(store, msg(ALICE, BOB, seq=1))
    await store.append_messages([msg(ALICE, BOB, seq=1)])
    assert await store.conversation_peers(ALICE) == [BOB]


# receipts


async def test_mark_delivered_moves_sent_messages_up_to_the_id(store: Store) -> None:
    m = await send(store, msg(ALICE, BOB), msg(CAROL, BOB), msg(ALICE, CAROL), msg(ALICE, BOB))
    await store.mark_read(BOB, m[1].id)
    receipts = await store.mark_delivered(BOB, m[3].id - 1)
    # m[1] is already read and m[2] is to someone else; m[3] is past the bound.
    assert receipts == [Receipt(m[0].id, ALICE)]
    assert await store.mark_delivered(BOB, m[3].id - 1) == []
    assert await store.mark_delivered(BOB, m[3].id) == [Receipt(m[3].id, ALICE)]
    statuses = [(await store.get_message(x.id)).status for x in m]  # type: ignore[union-attr]
    assert statuses == ["delivered", "read", "sent", "delivered"]


async def test_mark_delivered_returns_receipts_in_id_order(store: Store) -> None:
    m = await send(store, *(msg(sender, BOB) for sender in (CAROL, ALICE, CAROL, ALICE)))
    receipts = await store.mark_delivered(BOB, m[-1].id)
    assert receipts == [Receipt(x.id, x.sender_id) for x in m]


async def test_store_acks_moves_cursors_and_marks_delivered_per_device(store: Store) -> None:
    m = await send(store, msg(ALICE, BOB), msg(CAROL, BOB), msg(BOB, CAROL), msg(ALICE, BOB))
    receipts = await store.store_acks([(BOB, "phone", m[1].id), (CAROL, "laptop", m[2].id),
                                       (BOB, "tablet", m[3].id), (BOB, "phone", 0)])
    # Bob's second device finds the first two already delivered; a lower ack changes nothing.
    assert receipts == [[Receipt(m[0].id, ALICE), Receipt(m[1].id, CAROL)],
                        [Receipt(m[2].id, BOB)], [Receipt(m[3].id, ALICE)], []]
    assert await store.get_cursor(BOB, "phone") == m[1].id
    assert await store.get_cursor(BOB, "tablet") == m[3].id
    assert await store.get_cursor(CAROL, "laptop") == m[2].id
    assert await store.store_acks([]) == []


async def test_store_acks_past_earlier_cursors_mark_only_what_is_still_sent(store: Store) -> None:
    m = await send(store, msg(ALICE, BOB), msg(ALICE, BOB))
    assert await store.store_acks([(BOB, "phone", m[1].id)]) == [
        [Receipt(m[0].id, ALICE), Receipt(m[1].id, ALICE)]]
    n = await send(store, msg(CAROL, BOB), msg(ALICE, BOB), msg(ALICE, CAROL))
    assert await store.mark_read(BOB, n[0].id) == Receipt(n[0].id, CAROL)
    # A device that never acked catches up past the phone: only Bob's new unread message
    # is marked (the read one stays read); the phone then finds nothing left to mark.
    assert await store.store_acks([(BOB, "tablet", n[1].id), (BOB, "phone", n[1].id)]) == [
        [Receipt(n[1].id, ALICE)], []]
    assert (await store.get_message(n[0].id)).status == "read"  # type: ignore[union-attr]
    assert (await store.get_message(n[2].id)).status == "sent"  # type: ignore[union-attr]


async def test_mark_read_from_sent_works_once(store: Store) -> None:
    [m] = await send(store, msg(ALICE, BOB))
    assert await store.mark_read(BOB, m.id) == Receipt(m.id, ALICE)
    assert await store.mark_read(BOB, m.id) is None
    assert (await store.get_message(m.id)).status == "read"  # type: ignore[union-attr]


async def test_mark_read_from_delivered_works_once(store: Store) -> None:
    [m] = await send(store, msg(ALICE, BOB))
    await store.mark_delivered(BOB, m.id)
    assert await store.mark_read(BOB, m.id) == Receipt(m.id, ALICE)
    assert await store.mark_read(BOB, m.id) is None
    assert (await store.get_message(m.id)).status == "read"  # type: ignore[union-attr]


async def test_mark_read_ignores_another_recipients_message(store: Store) -> None:
    [m] = await send(store, msg(ALICE, CAROL))
    assert await store.mark_read(BOB, m.id) is None
    assert await store.mark_read(BOB, 999_999) is None
    assert (await store.get_message(m.id)).status == "sent"  # type: ignore[union-attr]


# cursors


async def test_cursors_start_at_zero_and_never_go_backwards(store: Store) -> None:
    assert await store.get_cursor(ALICE, "phone") == 0
    assert await store.advance_cursor(ALICE, "phone", 10) == 10
    assert await store.advance_cursor(ALICE, "phone", 4) == 10
    assert await store.get_cursor(ALICE, "phone") == 10
    assert await store.advance_cursor(ALICE, "phone", 11) == 11
    # Per device and per user.
    assert await store.get_cursor(ALICE, "laptop") == 0
    assert await store.get_cursor(BOB, "phone") == 0


# concurrency


async def test_concurrent_appends_get_unique_increasing_ids_and_none_is_lost(
        store: Store) -> None:
    tasks, per_task, batch = 20, 50, 10

    async def writer(sender: int) -> list[int]:
        out: list[int] = []
        for start in range(0, per_task, batch):
            results = await store.append_messages([
                msg(sender, BOB, device="d", seq=start + i + 1, content=f"{sender}/{start + i}")
                for i in range(batch)])
            out += [r.message.id for r in results if not r.duplicate]
        return out

    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        # A single-integer cursor must see every id: commit order = id order.
        cursor = 0
        while True:
            finished = done.is_set()
            page = await store.messages_for_device(BOB, "reader", cursor, 1000)
            seen.extend(ids(page))
            cursor = page[-1].id if page else cursor
            if finished and not page:
                return
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    per_writer = await asyncio.gather(*(writer(100 + t) for t in range(tasks)))
    done.set()
    await reading

    for written in per_writer:
        assert len(written) == per_task and written == sorted(written)
    every = sorted(i for written in per_writer for i in written)
    assert len(set(every)) == tasks * per_task
    assert seen == every


@pytest.fixture
async def postgres_store(store_url: str) -> AsyncIterator[PostgresStore]:
    """The PostgreSQL store of ``store_url``; the other backends have no pool."""
    if not store_url.startswith("postgres"):
        pytest.skip("only the PostgreSQL store pools network connections")
    from tidings.store.postgres import PostgresStore

    store = open_store(store_url)
    assert isinstance(store, PostgresStore)
    try:
        yield store
    finally:
        await store.close()


BACKEND_PID = "SELECT pg_backend_pid()"


async def test_a_refreshed_postgres_pool_runs_the_next_statement_on_a_new_connection(
        postgres_store: PostgresStore) -> None:
    """After a partition every pooled connection may be dead without a word: refresh
    (on a failed health check or heartbeat) makes the next statement open a new one
    instead of waiting out its timeout on an old one."""
    store = postgres_store
    first = await store._fetchrow(BACKEND_PID)
    assert await store._fetchrow(BACKEND_PID) == first  # the pool hands the same one back
    await store.refresh()
    assert await store._fetchrow(BACKEND_PID) != first


async def test_a_pooled_postgres_connection_is_not_reset_on_release(
        postgres_store: PostgresStore) -> None:
    """One round trip per pooled statement: asyncpg's default reset (``RESET ALL;
    UNLISTEN *; ...``) on every release doubled them, so a session setting now
    outlives its statement (Tidings makes none: postgres_pool.keep_session)."""
    store = postgres_store
    first = await store._fetchrow(BACKEND_PID)
    await store._execute("SET application_name = 'tidings-reset-probe'")
    assert await store._fetchrow(BACKEND_PID) == first  # the same connection again
    row = await store._fetchrow("SELECT current_setting('application_name')")
    assert row[0] == "tidings-reset-probe"
