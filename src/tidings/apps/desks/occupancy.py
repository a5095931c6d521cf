"""Occupy and release a desk over Socket.IO (seed 000 §2.2.2): the events
``workstation_occupy`` and ``workstation_release``, with the same rules and the same
transaction as ``POST /api/workstations/{id}/occupy`` and ``.../release``.

A client sends either the short form ``{workstationId, duration?}`` (``duration`` in
minutes) or §2.2.2's whole message ``{header, payload: {action, data: {workstationId,
userId, duration?, priority?}, metadata}}``. It is answered, as the acknowledgement
and as an ``occupy_result`` (``release_result``) event to the same socket, with
§2.2.2's ``data`` ``{success, workstationId, occupiedBy, occupiedAt, expiresAt?,
message?}`` (plus ``status`` and, on failure, ``code``) — wrapped in §2.2.2's
response message when the request came wrapped.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from tidings.apps.desks import bookings, repository
from tidings.apps.desks.bookings import MAX_BOOKING_MS
from tidings.apps.desks.db import Tx
from tidings.apps.desks.errors import DeskError
from tidings.apps.desks.models import iso
from tidings.store.base import now_ms

if TYPE_CHECKING:
    from tidings.apps.desks.app import DeskApp

log = logging.getLogger(__name__)

MAX_DURATION_MINUTES = MAX_BOOKING_MS // 60_000
_MAX_REF = 100


class Request:
    """One decoded occupy/release request."""

    def __init__(self, ref: Any, duration: float | None, wrapped: bool) -> None:
        self.ref = ref  # workstationId as sent (echoed back as sent)
        self.duration = duration
        self.wrapped = wrapped


def _is_wrapped(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("payload"), dict)


def parse(body: Any, user_id: int) -> Request:
    """The request in either form, or ``DeskError`` naming what is wrong."""
    wrapped = _is_wrapped(body)
    data = body["payload"].get("data") if wrapped else body
    if not isinstance(data, dict) or "workstationId" not in data:
        raise DeskError(422, "INVALID_BODY",
                        "send {workstationId, duration?} or §2.2.2's {header, payload: {data}}")
    claimed = data.get("userId")
    if claimed is not None and str(claimed) != str(user_id):
        raise DeskError(403, "NOT_YOUR_USER_ID",
                        f"userId {str(claimed)[:_MAX_REF]!r} is not the authenticated user")
    duration = data.get("duration")
    if duration is not None and (isinstance(duration, bool)
                                 or not isinstance(duration, int | float)
                                 or not 0 < duration <= MAX_DURATION_MINUTES):
        raise DeskError(422, "INVALID_BODY",
                        f"duration must be minutes in (0, {MAX_DURATION_MINUTES}]")
    return Request(data["workstationId"], duration, wrapped)


async def find_by_business_id(tx: Tx, ref: str) -> int | None:
    """The desk whose business id (seed §5.3.1 ``workstation_id``, unique) is ``ref``."""
    row = await tx.fetchrow("SELECT id FROM workstations WHERE workstation_id = $1", ref)
    return int(row["id"]) if row else None


async def resolve(tx: Tx, ref: Any) -> int:
    """A desk's numeric id from ``workstationId``: its id (number or digits) or its
    business id; ``DeskError`` 404 if there is none."""
    if isinstance(ref, int) and not isinstance(ref, bool) and 0 < ref < 2**31:
        return ref
    if not isinstance(ref, str) or not 0 < len(ref) <= _MAX_REF or "\x00" in ref:
        raise DeskError(422, "INVALID_BODY", "workstationId must be a desk's id or "
                                             "business id (at most 100 characters)")
    found = await find_by_business_id(tx, ref)
    if found is None and ref.isascii() and ref.isdigit() and len(ref) < 10:
        found = int(ref)
    if found is None:
        raise DeskError(404, "WORKSTATION_NOT_FOUND", f"no workstation {ref!r}")
    return found


def _wrap(op: str, data: dict[str, Any], started: float) -> dict[str, Any]:
    """§2.2.2's response message around ``data``."""
    return {
        "header": {"messageId": uuid.uuid4().hex, "messageType": "workstation_status_update",
                   "timestamp": now_ms(), "version": "1.0.0", "source": "server"},
        "payload": {"action": f"{op}_result", "data": data,
                    "metadata": {"transactionId": uuid.uuid4().hex,
                                 "processingTime": round(1000 * (time.monotonic() - started),
                                                         3)}},
    }


class Occupancy:
    """The two Socket.IO operations of one node's desk map."""

    def __init__(self, desks: DeskApp) -> None:
        self._desks = desks

    async def occupy(self, user_id: int, body: Any) -> dict[str, Any]:
        """``workstation_occupy`` → the ``occupy_result``."""
        return await self._run("occupy", user_id, body)

    async def release(self, user_id: int, body: Any) -> dict[str, Any]:
        """``workstation_release`` → the ``release_result`` (same shape)."""
        return await self._run("release", user_id, body)

    async def _run(self, op: str, user_id: int, body: Any) -> dict[str, Any]:
        started = time.monotonic()
        wrapped = _is_wrapped(body)
        sent = body["payload"].get("data") if wrapped else body
        ref = sent.get("workstationId") if isinstance(sent, dict) else None
        try:
            request = parse(body, user_id)
            data = await self._apply(op, user_id, request)
        except DeskError as exc:
            data = {"success": False, "workstationId": ref, "occupiedBy": None,
                    "occupiedAt": None, "code": exc.code, "message": exc.message}
        except Exception:
            log.exception("socket.io %s of %r failed", op, ref)
            data = {"success": False, "workstationId": ref, "occupiedBy": None,
                    "occupiedAt": None, "code": "INTERNAL_ERROR", "message": "internal error"}
        return _wrap(op, data, started) if wrapped else data

    async def _apply(self, op: str, user_id: int, request: Request) -> dict[str, Any]:
        app = self._desks
        until = None if request.duration is None \
            else now_ms() + round(request.duration * 60_000)
        async with app.db.transaction() as tx:
            desk_id = await resolve(tx, request.ref)
            if op == "occupy":
                change = await bookings.occupy(tx, desk_id, user_id, until)
            else:
                change = await bookings.release(tx, desk_id, user_id)
        app.monitor.count("bookings")
        await app.announce([change])
        async with app.db.transaction(write=False) as tx:
            row = await repository.get_workstation(tx, desk_id)
        if row is None:  # deleted right after: the operation itself succeeded
            raise repository.not_found(desk_id)
        data: dict[str, Any] = {
            "success": True, "workstationId": request.ref,
            "occupiedBy": None if row["occupied_by"] is None else str(row["occupied_by"]),
            "occupiedAt": iso(row["occupied_at"]), "status": row["status"], "id": desk_id,
            "message": "occupied" if op == "occupy" else "released"}
        if op == "occupy" and until is not None:
            data["expiresAt"] = iso(until)
        return data
