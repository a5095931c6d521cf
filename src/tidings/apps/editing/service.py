"""The editing service of seed 002: editing sessions, the editing lock and takeover
requests, with the database as the single source of truth.

Every operation is one transaction that checks the rules and changes state;
events are published on the bus only *after* it committed, and only by the
caller whose conditional statement changed the row (``UPDATE … WHERE
status = 'pending' … RETURNING``), so each transition is announced exactly once
however many nodes race for it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from tidings.apps.editing import queries as q
from tidings.apps.editing.db import EditingDb, Tx
from tidings.apps.editing.models import (
    APPROVED,
    ENDED,
    PENDING,
    REJECTED,
    TAKEN_OVER,
    TIMED_OUT,
    Editor,
    Session,
    TakeoverRequest,
)
from tidings.apps.editing.workspaces import EditingError, role_in
from tidings.bus.base import Bus, EditingEvent
from tidings.protocol.codes import EditingErrorCode as Code
from tidings.protocol.codes import EditingEventType as Ev
from tidings.store.base import now_ms


class StartResult(msgspec.Struct, frozen=True):
    """A new session, and who edits the resource now (``editing``: this session)."""

    session: Session
    editor: Editor | None

    @property
    def editing(self) -> bool:
        """True if the new session holds the lock."""
        return self.editor is not None and self.editor.session_id == self.session.session_id


def _editor(row: dict[str, Any] | None) -> Editor | None:
    return None if row is None else msgspec.convert(row, Editor)


def _answering_session(request: TakeoverRequest, user_id: int) -> str:
    """The caller's one session that can answer ``request``: its target, or 409 saying
    why there is none (another user's session is asked) or more than one candidate
    (both sides are the caller's tabs: the answering tab must name itself)."""
    if request.target_user_id != user_id:
        raise EditingError(409, Code.NO_ANSWERING_SESSION,
                           f"request {request.id} asks session {request.target_session_id} "
                           "of another user: only that session answers it")
    if request.same_user:
        raise EditingError(409, Code.SESSION_REQUIRED,
                           f"both sessions of request {request.id} are yours (two tabs): "
                           "send session_id, the editing tab's, to answer it")
    return request.target_session_id


class EditingService:
    """Seed 002's ``ResourceEditingService``, plus session start, heartbeat and end."""

    def __init__(self, db: EditingDb, bus: Bus, *, takeover_timeout: float,
                 session_ttl: float) -> None:
        self.db = db
        self.bus = bus
        self.takeover_timeout_ms = round(takeover_timeout * 1000)
        self.session_ttl_ms = round(session_ttl * 1000)
        #: Told each event this node publishes (the webhook recorder, webhooks/events.py).
        self.told: list[Callable[[EditingEvent], Awaitable[None]]] = []

    def _ids(self, ids: list[str]) -> Any:
        # One bound parameter holding a list: a text[] on PostgreSQL, JSON on SQLite.
        return msgspec.json.encode(ids).decode() if self.db.dialect == "sqlite" else ids

    def _sql(self, sql: str) -> str:
        if self.db.dialect == "sqlite":
            return sql.replace("= ANY($2)", "IN (SELECT value FROM json_each($2))").replace(
                "= ANY($1)", "IN (SELECT value FROM json_each($1))")
        return sql

    # sessions

    async def start(self, user_id: int, workspace_id: int, resource_id: int) -> StartResult:
        """Open a session on a resource; it becomes the editor if nobody is."""
        now = now_ms()
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=True)
            name_row = await tx.fetchrow(q.USER_NAME, user_id)
            name = name_row["username"] if name_row else str(user_id)
            session_id = "es_" + secrets.token_urlsafe(18)
            row = await tx.fetchrow(q.INSERT_SESSION, session_id, workspace_id, resource_id,
                                    user_id, name, now)
            assert row is not None
            await tx.fetch(q.TAKE_FREE_LOCK, workspace_id, resource_id, session_id, now)
            editor = _editor(await tx.fetchrow(q.EDITOR, workspace_id, resource_id))
        return StartResult(Session.from_row(row), editor)

    async def _own_session(self, tx: Tx, user_id: int, session_id: str,
                           workspace_id: int, resource_id: int) -> Session:
        row = await tx.fetchrow(q.SESSION + tx.lock_clause, session_id)
        session = None if row is None else Session.from_row(row)
        if (session is None or session.user_id != user_id
                or (session.workspace_id, session.resource_id) != (workspace_id, resource_id)):
            raise EditingError(404, Code.SESSION_NOT_FOUND,
                               "no such session of yours on this resource (ended or timed "
                               "out: start a new one)")
        return session

    async def heartbeat(self, user_id: int, workspace_id: int, resource_id: int,
                        session_id: str) -> Editor | None:
        """Keep a session alive; return the resource's editor."""
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=True)
            await self._own_session(tx, user_id, session_id, workspace_id, resource_id)
            await tx.fetch(q.TOUCH, session_id, now_ms())
            return _editor(await tx.fetchrow(q.EDITOR, workspace_id, resource_id))

    async def touch(self, session_ids: list[str]) -> None:
        """Refresh the heartbeat of sessions whose WebSocket is open on this node."""
        if session_ids:
            async with self.db.transaction() as tx:
                await tx.fetch(self._sql(q.TOUCH_MANY), now_ms(), self._ids(session_ids))

    async def end(self, user_id: int, workspace_id: int, resource_id: int,
                  session_id: str) -> bool:
        """Close a session; free the lock if it held it. True if it was the editor."""
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=False)
            session = await self._own_session(tx, user_id, session_id, workspace_id,
                                              resource_id)
            announce = await self._drop_sessions(tx, [session], ENDED)
        await self._publish_all(announce)
        return any(e.type == Ev.EDITING_ENDED for e in announce)

    async def _drop_sessions(self, tx: Tx, sessions: list[Session],
                             reason: str) -> list[EditingEvent]:
        """Delete sessions (the caller has them locked or deleted already); release
        their locks and expire their requests. Returns the events to publish."""
        now = now_ms()
        ids = [s.session_id for s in sessions]
        events: list[EditingEvent] = []
        for row in await tx.fetch(self._sql(q.EXPIRE_OF_SESSIONS), now, self._ids(ids)):
            events.append(self._expired_event(TakeoverRequest.from_row(row), now))
        released = await tx.fetch(self._sql(q.RELEASE_LOCK), self._ids(ids))
        for s in sessions:
            await tx.fetch(q.DELETE_SESSION, s.session_id)
        by_id = {s.session_id: s for s in sessions}
        for lock in released:
            ended = by_id[lock["session_id"]]
            audience = [r["session_id"] for r in await tx.fetch(
                q.SESSIONS_OF_RESOURCE, lock["workspace_id"], lock["resource_id"])]
            events.append(EditingEvent([*audience, ended.session_id], Ev.EDITING_ENDED, {
                "workspace_id": ended.workspace_id, "resource_id": ended.resource_id,
                "session_id": ended.session_id, "user_id": ended.user_id,
                "reason": reason, "editor": None}))
        return events

    async def get_session(self, session_id: str) -> Session | None:
        """A session by id, or None."""
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(q.SESSION, session_id)
        return None if row is None else Session.from_row(row)

    async def status(self, user_id: int, workspace_id: int,
                     resource_id: int) -> tuple[Editor | None, TakeoverRequest | None]:
        """Who edits the resource, and its pending request if any."""
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=False)
            editor = _editor(await tx.fetchrow(q.EDITOR, workspace_id, resource_id))
            row = await tx.fetchrow(q.PENDING_OF_RESOURCE, workspace_id, resource_id)
        pending = None if row is None else TakeoverRequest.from_row(row)
        return editor, pending

    async def snapshot(self, session: Session) -> dict[str, Any]:
        """A session's state for the ``connected`` event: editor, requests to answer,
        and its own pending request."""
        now = now_ms()
        async with self.db.transaction() as tx:
            editor = _editor(await tx.fetchrow(q.EDITOR, session.workspace_id,
                                               session.resource_id))
            incoming = await tx.fetch(q.PENDING_FOR_TARGET, session.session_id, now)
            outgoing = await tx.fetch(q.PENDING_OF_REQUESTER, session.session_id, now)
        return {
            "session_id": session.session_id, "workspace_id": session.workspace_id,
            "resource_id": session.resource_id, "user_id": session.user_id,
            "editing": editor is not None and editor.session_id == session.session_id,
            "editor": None if editor is None else editor.to_json(session.user_id),
            "pending_requests": [TakeoverRequest.from_row(r).to_json(now) for r in incoming],
            "my_requests": [TakeoverRequest.from_row(r).to_json(now) for r in outgoing],
        }

    # takeover (seed 002 §5)

    async def request_takeover(self, user_id: int, workspace_id: int, resource_id: int,
                               requester_session_id: str,
                               target_session_id: str | None = None,
                               display_name: str | None = None) -> TakeoverRequest:
        """``RequestTakeover``: ask the editor's session to hand the lock over.
        ``display_name`` is seed 002's ``requester_name``, shown to the editor as given."""
        now = now_ms()
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=True)
            requester = await self._own_session(tx, user_id, requester_session_id,
                                                workspace_id, resource_id)
            expired = await tx.fetch(q.EXPIRE_DUE_ON_RESOURCE, now, workspace_id, resource_id)
            editor = _editor(await tx.fetchrow(q.EDITOR + tx.lock_clause, workspace_id,
                                               resource_id))
            request = await self._insert_request(tx, requester, editor, target_session_id, now,
                                                 display_name)
        await self._publish_all([self._expired_event(TakeoverRequest.from_row(r), now)
                                 for r in expired])
        await self._publish(EditingEvent([request.target_session_id], Ev.TAKEOVER_REQUEST,
                                            {"request": request.to_json(now)}))
        return request

    async def _insert_request(self, tx: Tx, requester: Session, editor: Editor | None,
                              target_session_id: str | None, now: int,
                              display_name: str | None) -> TakeoverRequest:
        if editor is None:
            raise EditingError(409, Code.NO_EDITOR, "nobody is editing: start editing instead")
        if editor.session_id == requester.session_id:
            raise EditingError(409, Code.SELF_TAKEOVER, "this session is already the editor")
        if target_session_id is not None and target_session_id != editor.session_id:
            raise EditingError(409, Code.TARGET_NOT_EDITOR, "that session no longer edits",
                               editor=editor.to_json(requester.user_id))
        row = await tx.fetchrow(
            q.INSERT_REQUEST, requester.workspace_id, requester.resource_id, requester.user_id,
            requester.user_name, requester.session_id, editor.user_id, editor.user_name,
            editor.session_id, now, now + self.takeover_timeout_ms, display_name)
        if row is None:
            pending = await tx.fetchrow(q.PENDING_OF_RESOURCE, requester.workspace_id,
                                        requester.resource_id)
            pending_id = pending["id"] if pending else None
            raise EditingError(409, Code.TAKEOVER_PENDING,
                               "this resource already has a pending takeover request",
                               pending_request_id=pending_id)
        return TakeoverRequest.from_row(row)

    async def respond(self, user_id: int, workspace_id: int, resource_id: int,
                      request_id: int, approved: bool,
                      session_id: str | None) -> TakeoverRequest:
        """``RespondToTakeover``: the editor's session approves (the lock moves to the
        requester in the same transaction) or rejects (the lock stays). Without
        ``session_id`` (seed 002's ``RespondToTakeover(requestID, approved)``) the
        caller answers for the request's target session, when that is theirs and the
        requesting one is not (see :func:`_answering_session`)."""
        now = now_ms()
        expired: TakeoverRequest | None = None
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=True)
            request = await self._visible_request(tx, user_id, workspace_id, resource_id,
                                                  request_id)
            if session_id is None:
                session_id = _answering_session(request, user_id)
            if request.target_user_id != user_id or request.target_session_id != session_id:
                raise EditingError(403, Code.NOT_TARGET,
                                   "only the editing session the request targets answers it")
            if request.status == PENDING and request.expires_at <= now:
                row = await tx.fetchrow(q.EXPIRE_DUE_ON_RESOURCE, now, workspace_id, resource_id)
                expired = None if row is None else TakeoverRequest.from_row(row)
                answered, audience = request, []
            else:
                answered = await self._answer(tx, request, approved, now)
                audience = [r["session_id"] for r in await tx.fetch(
                    q.SESSIONS_OF_RESOURCE, workspace_id, resource_id)]
        if answered is request:  # it expired before the answer: commit that, then refuse
            if expired is not None:
                await self._publish(self._expired_event(expired, now))
            raise EditingError(409, Code.REQUEST_NOT_PENDING, "the request expired",
                               request_status="expired")
        await self._announce_answer(answered, audience, now)
        return answered

    async def _answer(self, tx: Tx, request: TakeoverRequest, approved: bool,
                      now: int) -> TakeoverRequest:
        if request.status != PENDING:
            raise EditingError(409, Code.REQUEST_NOT_PENDING, f"the request is {request.status}",
                               request_status=request.status)
        editor = _editor(await tx.fetchrow(q.EDITOR + tx.lock_clause, request.workspace_id,
                                           request.resource_id))
        if editor is None or editor.session_id != request.target_session_id:
            raise EditingError(409, Code.NOT_EDITOR, "this session no longer edits")
        row = await tx.fetchrow(q.ANSWER, request.id, APPROVED if approved else REJECTED, now)
        if row is None:  # expired or answered by a concurrent call since we read it
            raise EditingError(409, Code.REQUEST_NOT_PENDING, "the request is no longer pending")
        if approved:
            # One UPDATE moves the lock: never two editors, never none.
            moved = await tx.fetchrow(q.MOVE_LOCK, request.workspace_id, request.resource_id,
                                      request.target_session_id, request.requester_session_id,
                                      now)
            assert moved is not None  # the lock row is locked above and held by the target
        return TakeoverRequest.from_row(row)

    async def _announce_answer(self, request: TakeoverRequest, audience: list[str],
                               now: int) -> None:
        sides = [request.requester_session_id, request.target_session_id]
        approved = request.status == APPROVED
        editor = Editor(request.requester_session_id, request.requester_user_id,
                        request.requester_name, now) if approved else Editor(
            request.target_session_id, request.target_user_id, request.target_name, 0)
        await self._publish(EditingEvent(sides, Ev.TAKEOVER_RESPONSE, {
            "request": request.to_json(now), "approved": approved,
            "editor": editor.to_json() if approved else None}))
        if approved:
            await self._publish(EditingEvent(audience, Ev.EDITING_ENDED, {
                "workspace_id": request.workspace_id, "resource_id": request.resource_id,
                "session_id": request.target_session_id, "user_id": request.target_user_id,
                "reason": TAKEN_OVER, "editor": editor.to_json()}))

    async def _visible_request(self, tx: Tx, user_id: int, workspace_id: int,
                               resource_id: int, request_id: int) -> TakeoverRequest:
        row = await tx.fetchrow(q.REQUEST + tx.lock_clause, request_id)
        request = None if row is None else TakeoverRequest.from_row(row)
        if (request is None or (request.workspace_id, request.resource_id)
                != (workspace_id, resource_id)
                or user_id not in (request.requester_user_id, request.target_user_id)):
            raise EditingError(404, Code.REQUEST_NOT_FOUND, f"no request {request_id} of yours "
                               "on this resource")
        return request

    async def pending_requests(self, user_id: int, workspace_id: int, resource_id: int,
                               session_id: str) -> list[TakeoverRequest]:
        """``GetPendingRequests``: requests waiting for this (editor's) session."""
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=False)
            await self._own_session(tx, user_id, session_id, workspace_id, resource_id)
            rows = await tx.fetch(q.PENDING_FOR_TARGET, session_id, now_ms())
        return [TakeoverRequest.from_row(r) for r in rows]

    async def request_status(self, user_id: int, workspace_id: int, resource_id: int,
                             request_id: int) -> TakeoverRequest:
        """``GetRequestStatus``, for the requester or the target. A pending request past
        its deadline is expired now (and announced once), so pollers never wait for the
        sweeper."""
        now = now_ms()
        async with self.db.transaction() as tx:
            await role_in(tx, workspace_id, user_id, edit=False)
            request = await self._visible_request(tx, user_id, workspace_id, resource_id,
                                                  request_id)
            expired: list[TakeoverRequest] = []
            if request.status == PENDING and request.expires_at <= now:
                expired = [TakeoverRequest.from_row(r) for r in await tx.fetch(
                    q.EXPIRE_DUE_ON_RESOURCE, now, workspace_id, resource_id)]
                row = await tx.fetchrow(q.REQUEST, request_id)
                assert row is not None
                request = TakeoverRequest.from_row(row)
        await self._publish_all([self._expired_event(r, now) for r in expired])
        return request

    # background job

    async def cleanup_expired_requests(self) -> tuple[int, int]:
        """``CleanupExpiredRequests``: expire unanswered requests and drop sessions
        without a heartbeat for ``session_ttl``; announce each exactly once. Returns
        (requests expired, sessions dropped) by this call."""
        now = now_ms()
        async with self.db.transaction() as tx:
            expired = [TakeoverRequest.from_row(r) for r in await tx.fetch(q.EXPIRE_DUE, now)]
            # FOR UPDATE: a node racing us waits, then skips the rows we deleted.
            stale = [Session.from_row(r) for r in await tx.fetch(
                q.STALE_SESSIONS + tx.lock_clause, now - self.session_ttl_ms)]
            events = [self._expired_event(r, now) for r in expired]
            if stale:
                events += await self._drop_sessions(tx, stale, TIMED_OUT)
        await self._publish_all(events)
        return len(expired), len(stale)

    # events

    def _expired_event(self, request: TakeoverRequest, now: int) -> EditingEvent:
        return EditingEvent([request.requester_session_id, request.target_session_id],
                            Ev.TAKEOVER_EXPIRED, {"request": request.to_json(now)})

    async def _publish(self, event: EditingEvent) -> None:
        await self.bus.publish(event)
        for tell in self.told:
            await tell(event)

    async def _publish_all(self, events: list[EditingEvent]) -> None:
        for event in events:
            await self._publish(event)

