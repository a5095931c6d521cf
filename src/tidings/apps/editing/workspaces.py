"""Workspaces and their members: who may see and who may edit a workspace's resources.

Roles: ``owner`` (the creator; manages members, edits), ``editor`` (edits) and
``viewer`` (reads editing status, never edits). Tidings does not store the
resources themselves: a resource is any positive integer id inside a workspace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tidings.api.errors import ApiError
from tidings.apps.editing.db import EditingDb, Tx
from tidings.protocol.codes import EditingErrorCode as Code
from tidings.store.base import now_ms

ROLES = ("owner", "editor", "viewer")
EDIT_ROLES = frozenset({"owner", "editor"})

_ROLE = """
SELECT w.id, m.role FROM workspaces w
LEFT JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = $2
WHERE w.id = $1"""

_INSERT_WORKSPACE = """
INSERT INTO workspaces (name, owner_id, created_at) VALUES ($1, $2, $3)
RETURNING id, name, owner_id, created_at"""

_INSERT_OWNER = """
INSERT INTO workspace_members (workspace_id, user_id, role, added_at)
VALUES ($1, $2, 'owner', $3)"""

_MINE = """
SELECT w.id, w.name, w.owner_id, w.created_at, m.role FROM workspaces w
JOIN workspace_members m ON m.workspace_id = w.id
WHERE m.user_id = $1 ORDER BY w.id"""

_UPSERT_MEMBER = """
INSERT INTO workspace_members (workspace_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role
RETURNING workspace_id, user_id, role, added_at"""

_MEMBERS = """
SELECT m.user_id, u.username AS user_name, m.role, m.added_at
FROM workspace_members m JOIN users u ON u.id = m.user_id
WHERE m.workspace_id = $1 ORDER BY m.user_id"""

_USER_EXISTS = "SELECT id FROM users WHERE id = $1"


class EditingError(ApiError):
    """An :class:`ApiError` with extra fields for the error body (e.g. the pending
    request's id on a 409)."""

    def __init__(self, status: int, code: Code, message: str, **details: Any) -> None:
        super().__init__(status, code.value, message)
        self.details = details


async def role_in(tx: Tx, workspace_id: int, user_id: int, *, edit: bool) -> str:
    """The caller's role in the workspace; 404 if there is no such workspace, 403 if
    the caller is not a member (or only a viewer and ``edit`` is asked)."""
    row = await tx.fetchrow(_ROLE, workspace_id, user_id)
    if row is None:
        raise EditingError(404, Code.WORKSPACE_NOT_FOUND, f"no workspace {workspace_id}")
    role: str | None = row["role"]
    if role is None:
        raise EditingError(403, Code.NOT_A_MEMBER,
                           f"you are not a member of workspace {workspace_id}")
    if edit and role not in EDIT_ROLES:
        raise EditingError(403, Code.READ_ONLY, "viewers cannot edit")
    return role


class Workspaces:
    """Creating workspaces and managing members."""

    def __init__(self, db: EditingDb) -> None:
        self.db = db
        #: Makes a user known to this database first (the user mirror beside Redis).
        self.ensure_user: Callable[[int], Awaitable[bool]] | None = None

    async def create(self, user_id: int, name: str) -> dict[str, Any]:
        """A new workspace owned by ``user_id``."""
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(_INSERT_WORKSPACE, name, user_id, now_ms())
            assert row is not None
            await tx.fetch(_INSERT_OWNER, row["id"], user_id, row["created_at"])
        return {**row, "role": "owner"}

    async def mine(self, user_id: int) -> list[dict[str, Any]]:
        """The workspaces the user belongs to, with their role in each."""
        async with self.db.transaction() as tx:
            return await tx.fetch(_MINE, user_id)

    async def members(self, user_id: int, workspace_id: int) -> list[dict[str, Any]]:
        """Members of a workspace the caller belongs to."""
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=False)
            return await tx.fetch(_MEMBERS, workspace_id)

    async def set_member(self, user_id: int, workspace_id: int, member_id: int,
                         role: str) -> dict[str, Any]:
        """Add ``member_id`` with ``role`` or change their role; owner only."""
        if self.ensure_user is not None:
            await self.ensure_user(member_id)
        async with self.db.transaction() as tx:
            if await role_in(tx, workspace_id, user_id, edit=True) != "owner":
                raise EditingError(403, Code.NOT_OWNER, "only the owner manages members")
            if member_id == user_id:
                raise EditingError(409, Code.NOT_OWNER, "the owner's own role cannot change")
            if await tx.fetchrow(_USER_EXISTS, member_id) is None:
                raise EditingError(404, Code.USER_NOT_FOUND, f"no user {member_id}")
            row = await tx.fetchrow(_UPSERT_MEMBER, workspace_id, member_id, role, now_ms())
            assert row is not None
            return row
