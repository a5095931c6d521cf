"""Failures of the ``tidings`` command as one line of words and a non-zero exit.

A database, bus or node that cannot be reached, a port in use, a file that
cannot be read: each becomes ``tidings: <what> : <why>`` on stderr and exit
status 1 — never a traceback. Anything unforeseen is still one line (its type
and message); ``--log-level debug`` logs the traceback for a bug report.
"""

from __future__ import annotations

import errno
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tidings.config import masked

if TYPE_CHECKING:
    from tidings.store import Store

log = logging.getLogger("tidings")


def one_line(text: str) -> str:
    """``text`` with its lines and runs of blanks joined by single spaces."""
    return " ".join(text.split())


def reason(exc: BaseException) -> str:
    """Why ``exc`` happened, in words, on one line."""
    if isinstance(exc, socket.gaierror):
        return "unknown host name"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is it running, on this host and port?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return "the address is already in use (another process listens on this port)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() + (f": {exc.filename}" if exc.filename else "")
    if isinstance(exc, sqlite3.Error):
        return f"SQLite: {one_line(str(exc))}"
    text = one_line(str(exc))
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        return reason(cause)
    return text or type(exc).__name__


def unreachable_types() -> tuple[type[BaseException], ...]:
    """The exceptions meaning "the database or bus could not be used"."""
    kinds: list[type[BaseException]] = [OSError, TimeoutError, sqlite3.Error]
    try:
        import asyncpg

        kinds += [asyncpg.PostgresError, asyncpg.InterfaceError]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    try:
        import redis

        kinds.append(redis.RedisError)
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    from tidings.store import StoreError

    kinds.append(StoreError)
    return tuple(kinds)


@asynccontextmanager
async def opened_store(url: str) -> AsyncIterator[Store]:
    """The store named by ``url``, closed on exit; any failure to reach or use it
    exits with one line naming the database (its password masked)."""
    from tidings.store import open_store

    try:
        store = open_store(url)
    except ValueError as exc:
        raise SystemExit(f"tidings: {exc}") from None
    try:
        yield store
    except unreachable_types() as exc:
        log.debug("cannot use the database", exc_info=True)
        raise SystemExit(f"tidings: cannot use the database {masked('', url)}: "
                         f"{reason(exc)}") from None
    finally:
        try:
            await store.close()
        except Exception:  # closing what never opened: nothing to report
            log.debug("closing the store failed", exc_info=True)


def unexpected(exc: BaseException) -> SystemExit:
    """The exit for an exception nothing else handled (a bug): one line, and the
    traceback in the debug log."""
    log.debug("unexpected error", exc_info=exc)
    return SystemExit(f"tidings: unexpected error ({type(exc).__name__}): {reason(exc)} "
                      "(rerun with --log-level debug for details)")
