"""Group commit over a real SQLite store: batching, ordering and failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.store import AppendResult, NewMessage, StoreError
from tidings.store.groupcommit import GroupCommitLog
from tidings.store.sqlite import SqliteStore

ALICE, BOB = 1, 2


class FlakyStore(SqliteStore):
    """A real SQLite store whose appends can be made to fail or to wait."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.failures: list[Exception | None] = []  # for the next appends, in order (None: ok)
        self.gate: asyncio.Event | None = None  # appends wait for it when set
        self.entered = asyncio.Event()

    async def append_messages(self, batch: list[NewMessage]) -> list[AppendResult]:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failures and (failure := self.failures.pop(0)) is not None:
            raise failure
        return await super().append_messages(batch)


class Recorder:
    """The commit hook and observer: what each commit saw."""

    def __init__(self) -> None:
        self.batches: list[list[AppendResult]] = []
        self.sizes: list[int] = []
        self.futures: dict[str, asyncio.Future[AppendResult]] = {}  # by content
        self.resolved_before_hook: list[bool] = []  # per batch: any of its futures done?
        self.fail = False

    async def hook(self, results: list[AppendResult]) -> None:
        self.resolved_before_hook.append(
            any(f.done() for r in results if (f := self.futures.get(r.message.content))))
        self.batches.append(results)
        if self.fail:
            raise RuntimeError("hook exploded")

    def observe(self, size: int, seconds: float) -> None:
        assert seconds >= 0
        self.sizes.append(size)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FlakyStore]:
    opened = FlakyStore(str(tmp_path / "gc.db"))
    await opened.migrate()
    for name in ("alice", "bob"):
        await opened.create_user(name, "!")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def log(store: FlakyStore, recorder: Recorder) -> AsyncIterator[GroupCommitLog]:
    commit_log = GroupCommitLog(store, recorder.hook, max_batch=3, observe=recorder.observe)
    commit_log.start()
    try:
        yield commit_log
    finally:
        if store.gate is not None:
            store.gate.set()
        await commit_log.close()


def message(content: str, seq: int = 0) -> NewMessage:
    return NewMessage(ALICE, "phone", BOB, "text", content, seq)


def append(log: GroupCommitLog, recorder: Recorder, *contents: str
           ) -> list[asyncio.Future[AppendResult]]:
    futures = [log.append(message(c)) for c in contents]
    recorder.futures.update(zip(contents, futures, strict=True))
    return futures


async def test_appends_resolve_in_call_order_with_increasing_ids(log, recorder):
    futures = append(log, recorder, *[f"m{i}" for i in range(7)])
    results = await asyncio.gather(*futures)
    assert [r.message.content for r in results] == [f"m{i}" for i in range(7)]
    ids = [r.message.id for r in results]
    assert ids == sorted(ids) and len(set(ids)) == 7
    assert not any(r.duplicate for r in results)


async def test_a_batch_holds_at_most_max_batch_messages(log, recorder):
    await asyncio.gather(*append(log, recorder, *"abcdefg"))  # queued before the task runs
    assert recorder.sizes == [3, 3, 1]
    assert [[r.message.content for r in b] for b in recorder.batches] == [
        list("abc"), list("def"), ["g"]]


async def test_appends_arriving_during_a_commit_share_the_next_batch(log, recorder, store):
    store.gate = asyncio.Event()
    first = append(log, recorder, "first")
    await store.entered.wait()  # the first commit is in progress, holding the gate
    later = append(log, recorder, "x", "y")
    store.gate.set()
    await asyncio.gather(*first, *later)
    assert recorder.sizes == [1, 2]


async def test_the_hook_sees_each_batch_in_id_order_before_any_future_resolves(log,
                                                                               recorder):
    await asyncio.gather(*append(log, recorder, *"abcde"))
    assert recorder.resolved_before_hook == [False, False]
    flat = [r.message.id for batch in recorder.batches for r in batch]
    assert flat == sorted(flat)


async def test_with_the_store_down_every_future_fails_and_later_batches_still_work(
        log, recorder, store, caplog):
    boom = RuntimeError("disk on fire")
    store.failures = [boom] * 4  # the batch, then each message retried alone
    failed = append(log, recorder, "a", "b", "c")
    for future in failed:
        with pytest.raises(RuntimeError) as exc:
            await future
        assert exc.value is boom
    assert recorder.batches == [] and recorder.sizes == []  # nothing acknowledged
    assert "append of 3 messages failed (disk on fire); retrying one by one" in caplog.text
    assert await store.history(ALICE, BOB, None, 10) == []

    results = await asyncio.gather(*append(log, recorder, "d", "e"))
    assert [r.message.content for r in results] == ["d", "e"]
    assert [m.content for m in await store.history(ALICE, BOB, None, 10)] == ["e", "d"]


async def test_one_bad_message_fails_alone_and_its_neighbours_are_stored_in_order(
        log, recorder, store):
    store.failures = [StoreError("batch refused"), None, StoreError("b is bad"), None]
    futures = append(log, recorder, *"abcdef")  # two batches of three
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(outcomes[1], StoreError)
    stored = [o.message for i, o in enumerate(outcomes) if i != 1]
    assert [m.content for m in stored] == list("acdef")
    assert [m.id for m in stored] == sorted(m.id for m in stored)


async def test_a_failing_hook_does_not_fail_the_appends(log, recorder, caplog):
    recorder.fail = True
    results = await asyncio.gather(*append(log, recorder, "a", "b"))
    assert [r.message.content for r in results] == ["a", "b"]
    assert "commit hook failed" in caplog.text


async def test_duplicates_resolve_to_the_earlier_message_and_skip_the_hook(log, recorder):
    first = await log.append(message("hello", seq=5))
    again = await log.append(message("hello", seq=5))
    assert not first.duplicate and again.duplicate
    assert again.message == first.message
    assert [len(b) for b in recorder.batches] == [1, 0]


async def test_close_commits_what_is_pending(store, recorder):
    commit_log = GroupCommitLog(store, recorder.hook)
    commit_log.start()
    futures = append(commit_log, recorder, "a", "b")
    await commit_log.close()
    assert all(f.done() for f in futures)
    assert [f.result().message.content for f in futures] == ["a", "b"]
    await commit_log.close()  # closing twice is harmless


async def test_closing_a_log_that_never_started_returns(store, recorder):
    await GroupCommitLog(store, recorder.hook).close()


async def test_appends_to_a_closed_store_fail_with_the_store_error(tmp_path, recorder):
    store = SqliteStore(str(tmp_path / "closed.db"))
    await store.migrate()
    await store.close()
    commit_log = GroupCommitLog(store, recorder.hook)
    commit_log.start()
    try:
        futures = append(commit_log, recorder, "a", "b")
        for future in futures:
            with pytest.raises(StoreError, match="store is closed"):
                await future
    finally:
        await commit_log.close()


async def test_submit_tells_each_outcome_in_order_after_its_batch_hook(log, recorder):
    told: list[tuple[str, int]] = []  # (content, batches the hook had seen by then)

    def done(result: AppendResult | None, exc: BaseException | None) -> None:
        assert result is not None and exc is None
        told.append((result.message.content, len(recorder.batches)))

    for c in "abcd":
        log.submit(message(c), done)
    while len(told) < 4:
        await asyncio.sleep(0.01)
    assert told == [("a", 1), ("b", 1), ("c", 1), ("d", 2)]  # max_batch is 3


async def test_submit_tells_failures_and_a_failing_callback_spares_the_others(
        log, recorder, store, caplog):
    store.failures = [RuntimeError("down")] * 3
    told: list[BaseException | None] = []

    def explode(result: AppendResult | None, exc: BaseException | None) -> None:
        raise RuntimeError("callback exploded")

    log.submit(message("a"), explode)
    log.submit(message("b"), lambda r, e: told.append(e))
    while not told:
        await asyncio.sleep(0.01)
    assert isinstance(told[0], RuntimeError) and str(told[0]) == "down"
    assert "group commit callback failed" in caplog.text


async def test_submit_to_a_closing_log_is_told_at_once(store, recorder):
    commit_log = GroupCommitLog(store, recorder.hook)
    commit_log.start()
    await commit_log.close()
    told: list[BaseException | None] = []
    commit_log.submit(message("late"), lambda r, e: told.append(e))
    assert len(told) == 1 and isinstance(told[0], StoreError)


@pytest.mark.parametrize("seq", [0, 9])
async def test_a_row_sqlite_refuses_fails_alone(log, recorder, store, seq):
    # INSERT OR IGNORE skips a NOT NULL failure too, silently: the store must notice.
    bad = NewMessage(ALICE, "phone", BOB, "text", None, seq)  # type: ignore[arg-type]
    futures = [log.append(message("a")), log.append(bad), log.append(message("b"))]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(outcomes[1], StoreError)
    a, b = outcomes[0], outcomes[2]
    assert isinstance(a, AppendResult) and isinstance(b, AppendResult)
    assert (a.message.content, b.message.content) == ("a", "b")
    assert [(m.id, m.content) for m in await store.history(ALICE, BOB, None, 10)] == [
        (b.message.id, "b"), (a.message.id, "a")]
