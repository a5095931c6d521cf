"""How Tidings runs its asyncpg pools: statements that may not wait forever, a close
that does not hang on a dead link, and no reset query on release. Shared by the store,
the cluster registry and the apps' side stores."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 5.0
"""Seconds a statement may wait for PostgreSQL before it fails (and a chat in it is
refused with WS_INTERNAL_ERROR). A network partition, or a server whose host went
away, does not reset the connection: without a bound, the statement, and every
connection teardown that stores a cursor, would wait for as long as TCP retries."""


async def keep_session(conn: Any) -> None:
    """The pools' ``reset``: nothing to undo on a connection going back to its pool.

    asyncpg's default reset runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` on every release, a second round trip for every pooled
    statement (a fifth of a worker's CPU while clients reconnected). Tidings leaves no
    session state on a pooled connection: no ``SET``, no ``LISTEN`` (the bus and the
    desks' change feed listen on connections of their own), cursors only inside
    transactions, and the one session lock (migrations) is released by its holder or
    dies with its connection. asyncpg still rolls back a transaction left open and drops
    listeners before this is called.
    """


async def close_pool(pool: Any, within: float = COMMAND_TIMEOUT) -> None:
    """Close an asyncpg pool gracefully, or terminate its connections after ``within`` s:
    a graceful close waits for the server to see each connection end, which a
    partitioned or half-open link never lets it (a node cut off that way took its whole
    ``shutdown_timeout`` to exit, then was killed)."""
    closing = asyncio.ensure_future(pool.close())
    done, _ = await asyncio.wait({closing}, timeout=within)
    if not done:
        log.warning("postgres: connections did not close within %g s; terminated", within)
        pool.terminate()
        closing.cancel()
        closing.add_done_callback(lambda t: t.cancelled() or t.exception())
    else:
        closing.result()
