"""The SQLite store's batching worker: order, errors and cancellation per job."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tidings.auth.tokens import Authenticator, hash_token
from tidings.config import Settings
from tidings.store.sqlite import SqliteStore
from tidings.store.sqlite_worker import JOBS_PER_HANDOFF, BatchWorker


async def test_jobs_run_in_order_on_one_thread_and_errors_stay_with_their_job():
    worker = BatchWorker("test-worker")
    ran: list[tuple[int, str]] = []

    def job(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        if n == 7:
            raise ValueError("seven")
        return n * 2

    try:
        futures = [worker.submit(lambda n=n: job(n)) for n in range(3 * JOBS_PER_HANDOFF)]
        results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        worker.shutdown()
    assert [n for n, _ in ran] == list(range(3 * JOBS_PER_HANDOFF))
    assert len({name for _, name in ran}) == 1 and ran[0][1] != threading.current_thread().name
    assert isinstance(results[7], ValueError)
    assert results[:7] == [0, 2, 4, 6, 8, 10, 12] and results[8] == 16


async def test_a_cancelled_caller_does_not_stop_the_others():
    worker = BatchWorker("test-worker")
    gate = threading.Event()
    try:
        first = worker.submit(lambda: gate.wait(5))
        second = worker.submit(lambda: "second")
        first.cancel()
        gate.set()
        assert await second == "second"
        # The worker is still usable after a batch.
        assert await worker.submit(lambda: 42) == 42
    finally:
        worker.shutdown()


async def test_concurrent_verifies_record_their_uses_in_one_write(tmp_path):
    store = SqliteStore(str(tmp_path / "touch.db"))
    await store.migrate()
    writes: list[list[tuple[int, int]]] = []
    real = store.touch_tokens

    async def counting(uses: list[tuple[int, int]]) -> None:
        writes.append(uses)
        await real(uses)

    store.touch_tokens = counting  # type: ignore[method-assign]
    try:
        auth = Authenticator(store, Settings())
        users = [await store.create_user(f"u{n}", "!") for n in range(50)]
        tokens = [(await auth.issue(u.id))[0] for u in users]
        identities = await asyncio.gather(*(auth.verify(t) for t in tokens))
        assert [i.user_id for i in identities] == [u.id for u in users]
        # Every use is stored by the time verify returns, in far fewer writes than uses.
        for token in tokens:
            assert (await store.get_token(hash_token(token))).last_used_at is not None
        assert sum(len(w) for w in writes) == 50 and len(writes) <= 3
    finally:
        await store.close()


async def test_a_failed_touch_write_fails_the_verifies_waiting_for_it(tmp_path):
    store = SqliteStore(str(tmp_path / "fail.db"))
    await store.migrate()

    async def broken(uses: list[tuple[int, int]]) -> None:
        raise OSError("disk gone")

    try:
        auth = Authenticator(store, Settings())
        user = await store.create_user("u", "!")
        token, _ = await auth.issue(user.id)
        store.touch_tokens = broken  # type: ignore[method-assign]
        with pytest.raises(OSError, match="disk gone"):
            await auth.verify(token)
    finally:
        await store.close()
