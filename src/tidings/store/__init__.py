"""Durable state: the :class:`Store` interface and its SQLite and PostgreSQL backends."""

from __future__ import annotations

from .base import (
    STATUS_RANK,
    AppendResult,
    Conflict,
    NewMessage,
    Receipt,
    Store,
    StoredMessage,
    StoreError,
    Token,
    User,
    now_ms,
)

__all__ = [
    "STATUS_RANK",
    "AppendResult",
    "Conflict",
    "NewMessage",
    "Receipt",
    "Store",
    "StoreError",
    "StoredMessage",
    "Token",
    "User",
    "now_ms",
    "open_store",
]


def open_store(url: str) -> Store:
    """Open the store named by ``url`` (``sqlite:///path``, ``postgresql://...`` or
    ``redis://HOST:PORT/DB``).

    Nothing is connected yet: call :meth:`Store.migrate` or any method to start.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from .sqlite import SqliteStore  # imported lazily: each backend has its own deps

        return SqliteStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url)
    if scheme in ("redis", "rediss"):
        from .redis import RedisStore

        return RedisStore(url)
    raise ValueError(
        f"unsupported store URL {url!r}: expected sqlite:///<path>, postgresql://... or "
        "redis://..."
    )
