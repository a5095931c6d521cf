"""The apps' SQL database beside a Redis store (setting ``apps_database_url``).

The desk map and collaborative editing keep their tables in SQL; with the core store
on Redis they live in a database of their own. Their rows refer to users (foreign
keys, names in joins), and users live in Redis: :class:`UserMirror` copies a user's
id and name into that database's ``users`` table the first time the node sees them
(an authenticated request or socket, or a member being added), so the apps' SQL
works unchanged. Passwords and tokens stay in Redis only.
"""

from __future__ import annotations

import logging

from tidings.apps.editing.db import open_editing_db
from tidings.auth import Identity
from tidings.config import Settings
from tidings.store import Store, open_store
from tidings.store.base import now_ms

log = logging.getLogger(__name__)

#: The apps' database beside a Redis store on a lone node: next to the default store file.
APPS_SQLITE_DEFAULT = "sqlite:///tidings-apps.db"


def apps_database_url(settings: Settings) -> str:
    """Where the desk map and editing keep their tables ("" = not served): the store's
    database; beside a Redis store ``apps_database_url``, by default an SQLite file for
    a lone node. Nodes sharing a bus must name one database they share: never silently
    off, never silently one desk map per node."""
    if not settings.apps_enabled:
        return ""
    if settings.apps_database_url:
        return settings.apps_database_url
    if settings.database_url.partition("://")[0].lower() not in ("redis", "rediss"):
        return settings.database_url
    if settings.bus_url.startswith("memory:") and settings.workers <= 1:
        return APPS_SQLITE_DEFAULT
    raise ValueError(
        "the desk map and collaborative editing keep their tables in SQL, and the store "
        "is Redis with nodes sharing a bus: set apps_database_url "
        "(TIDINGS_APPS_DATABASE_URL) to a postgresql://... (or sqlite:///PATH) database "
        "every node shares to serve them, or apps_enabled=false "
        "(TIDINGS_APPS_ENABLED=false, --no-apps-enabled) to serve without them")


_FREE_NAME = "DELETE FROM users WHERE username = $1 AND id <> $2"
# {} is PostgreSQL's OVERRIDING SYSTEM VALUE: users.id is an identity column there.
_UPSERT = """
INSERT INTO users (id, username, password_hash, created_at) {}
VALUES ($1, $2, '!redis', $3) ON CONFLICT (id) DO UPDATE SET username = excluded.username"""


class UserMirror:
    """Users of the core ``store`` copied into the apps' database at ``url``."""

    def __init__(self, store: Store, url: str) -> None:
        self.store = store
        self.url = url
        self.db = open_editing_db(url)
        self._upsert = _UPSERT.format(
            "OVERRIDING SYSTEM VALUE" if self.db.dialect == "postgres" else "")
        self._known: set[int] = set()

    async def migrate(self) -> list[str]:
        """Create or update the apps' tables (the SQL store's migrations)."""
        side = open_store(self.url)
        try:
            return await side.migrate()
        finally:
            await side.close()

    async def ensure(self, user_id: int) -> bool:
        """Copy user ``user_id`` if not done yet; False if the store has no such user."""
        if user_id in self._known:
            return True
        user = await self.store.get_user(user_id)
        if user is None:
            return False
        async with self.db.transaction() as tx:
            await tx.fetch(_FREE_NAME, user.username, user.id)  # a stale copy's name
            await tx.fetch(self._upsert, user.id, user.username, now_ms())
        self._known.add(user_id)
        return True

    async def on_verified(self, identity: Identity) -> None:
        """Authenticator hook: the caller's user exists in the apps' database. A failure
        is logged, not raised: chat and channels do not need that database (the next
        authentication tries again)."""
        try:
            await self.ensure(identity.user_id)
        except Exception:
            log.exception("apps database: could not copy user %d", identity.user_id)

    async def close(self) -> None:
        """Release the connections."""
        await self.db.close()
