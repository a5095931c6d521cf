"""Group commit: many appends, one transaction.

Chats are acknowledged only once stored. Committing each alone would cap a
node at the database's single-row commit rate (SQLite ~7.5k/s, PostgreSQL
~22k/s here); batching what arrives while the previous commit runs gives
~10x that. Appends enter the batch in call order, ids follow that order, and
``on_commit`` sees each batch's new messages in id order before any caller's
future resolves.

A caller that only reacts to the outcome (the chat's ``ChatAck``) passes a callback
to :meth:`GroupCommit.submit` instead of awaiting a future: the commit task calls it
right after the hook, in the same turn of the event loop, so one batch's pushes and
acks leave in one write per connection, and no future or extra callback is made per
item (bench: durable chat).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from tidings.store.base import AppendResult, NewMessage, Store, StoreError

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - an item to append
R = TypeVar("R")  # its result

CommitHook = Callable[[list[AppendResult]], Awaitable[None]]
Done = Callable[[R | None, BaseException | None], None]
"""Told an item's outcome once: ``(result, None)`` when durable, ``(None, exc)`` if not."""


def _settle(future: asyncio.Future[R], result: R | None, exc: BaseException | None) -> None:
    if future.done():  # the caller gave up waiting
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]  # None only with an exc


class GroupCommit(Generic[I, R]):
    """Run ``commit`` on batches of at most ``max_batch`` items (one transaction each);
    ``on_commit`` sees each batch's results before any caller's future resolves.
    Used for chat messages (:class:`GroupCommitLog`) and channel publications."""

    def __init__(self, commit: Callable[[list[I]], Awaitable[list[R]]],
                 on_commit: Callable[[list[R]], Awaitable[None]], *, max_batch: int = 512,
                 observe: Callable[[int, float], None] | None = None,
                 name: str = "group-commit") -> None:
        self._commit_batch = commit
        self._observe = observe  # (batch size, seconds) of each commit, for metrics
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._name = name
        self._pending: list[tuple[I, Done[R]]] = []
        self._progress: asyncio.Event | None = None  # made when someone waits for room
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the committing task."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def close(self) -> None:
        """Commit what is pending, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        await self._task
        self._task = None

    def append(self, item: I) -> asyncio.Future[R]:
        """Queue one item; the future resolves once it is durable."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.submit(item, functools.partial(_settle, future))
        return future

    def submit(self, item: I, done: Done[R]) -> None:
        """Queue one item; ``done`` is called once with its outcome, by the commit task
        right after ``on_commit`` saw the batch (at once if the log is closing)."""
        if self._closing:  # shutting down: nothing would commit it, so answer at once
            _tell(done, None, StoreError("the node is shutting down; send it again"))
            return
        self._pending.append((item, done))
        self._wakeup.set()

    @property
    def queued(self) -> int:
        """Items waiting for the next commit (the one running not counted)."""
        return len(self._pending)

    async def progress(self) -> None:
        """Wait until the next batch is taken from the queue or a commit is done: the
        queue may have shrunk (admission control: channels/broker.py)."""
        if self._progress is None:
            self._progress = asyncio.Event()
        await self._progress.wait()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                self._progressed()  # the queue has room again while this batch commits
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[tuple[I, Done[R]]]) -> None:
        try:
            await self._commit_batch_of(batch)
        finally:
            self._progressed()

    def _progressed(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None:  # waiters look again, re-arming it if need be
            progress.set()

    async def _commit_batch_of(self, batch: list[tuple[I, Done[R]]]) -> None:
        started = time.perf_counter()
        try:
            results = await self._commit_batch([m for m, _ in batch])
            if self._observe is not None:
                self._observe(len(batch), time.perf_counter() - started)
        except Exception as exc:
            if len(batch) > 1:
                # One bad message must not fail its neighbours: commit them one by one,
                # in order, so only the culprit (or all, if the store is down) fails.
                log.warning("append of %d messages failed (%s); retrying one by one",
                            len(batch), exc)
                for item in batch:
                    await self._commit_batch_of([item])
                return
            # Nothing was acknowledged: the sender gets an error and may retry.
            log.error("append failed: %s", exc)
            for _, done in batch:
                _tell(done, None, exc)
            return
        try:
            await self._on_commit(results)
        except Exception:
            log.exception("commit hook failed")
        for (_, done), result in zip(batch, results, strict=True):
            _tell(done, result, None)


def _tell(done: Done[R], result: R | None, exc: BaseException | None) -> None:
    try:
        done(result, exc)
    except Exception:  # one caller's failure must not keep the others from their outcome
        log.exception("group commit callback failed")


CHAT_BATCH = 4096
"""At most this many chats a commit. A commit's cost is mostly the index pages it
rewrites (one per recipient and per sender touched, whatever the number of rows), so
a busy node's fewer, larger commits cost less per message: committing everything
that waited, rather than 512 at a time, halved SQLite's CPU per chat (bench: chat)."""


class GroupCommitLog(GroupCommit[NewMessage, AppendResult]):
    """Append chat messages to a :class:`Store`; the hook sees only new messages."""

    def __init__(self, store: Store, on_commit: CommitHook, *, max_batch: int = CHAT_BATCH,
                 observe: Callable[[int, float], None] | None = None) -> None:
        async def fresh_only(results: list[AppendResult]) -> None:
            await on_commit([r for r in results if not r.duplicate])

        super().__init__(store.append_messages, fresh_only, max_batch=max_batch,
                         observe=observe)
