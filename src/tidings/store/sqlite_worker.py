"""The SQLite store's one worker thread, fed in batches.

Every store call is a small job (a statement or one transaction) that must run on
the thread owning the connection. ``run_in_executor`` per call costs a thread
hand-off and two chained futures each; under many small concurrent calls — a
reconnect storm asks for a token, a cursor, a backlog page and the user's peers per
``MsgAuth`` — that overhead rivalled the queries themselves. Here jobs queue up, one
executor item runs every job queued so far (in queue order, each still its own
statement or transaction) and their results go back to the event loop in one
callback per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

JOBS_PER_HANDOFF = 64
"""Results go back to the event loop after at most this many jobs."""

_Job = tuple[asyncio.AbstractEventLoop, Callable[[], Any], "asyncio.Future[Any]"]
_Done = tuple["asyncio.Future[Any]", bool, Any]


class BatchWorker:
    """One thread that runs queued jobs in order, many per hand-off."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._queue: list[_Job] = []
        self._lock = threading.Lock()
        self._draining = False

    def submit(self, job: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``job`` for the worker thread; the future resolves on this loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queue.append((loop, job, future))
            start = not self._draining
            self._draining = True
        if start:
            try:
                self._executor.submit(self._drain)
            except BaseException:
                with self._lock:
                    self._draining = False
                    self._queue.clear()
                raise
        return future

    def shutdown(self) -> None:
        """Stop the thread once the queued jobs have run."""
        self._executor.shutdown(wait=True)

    def _drain(self) -> None:
        # On the worker thread: run the queued jobs, a batch at a time, until none is left.
        while True:
            with self._lock:
                batch = self._queue[:JOBS_PER_HANDOFF]
                del self._queue[:JOBS_PER_HANDOFF]
                if not batch:
                    self._draining = False
                    return
            by_loop: dict[asyncio.AbstractEventLoop, list[_Done]] = {}
            for loop, job, future in batch:
                try:
                    done: _Done = (future, True, job())
                except BaseException as exc:  # the caller gets it, as with run_in_executor
                    done = (future, False, exc)
                by_loop.setdefault(loop, []).append(done)
            for loop, results in by_loop.items():
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                    loop.call_soon_threadsafe(_settle, results)


def _settle(results: list[_Done]) -> None:
    # On the event loop: resolve one batch's futures (a cancelled caller is skipped).
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
