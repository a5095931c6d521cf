"""The booking rules of seed §2.4: occupy, release, reserve and cancel a desk.

Each runs in the caller's transaction: it locks the workstation row first, checks
the rule, writes the booking and the desk's status, logs, and returns the
:class:`Change` to announce after commit. Overlaps are refused here (409) and, should
two writers race past that check, by the database's own constraint.
"""

from __future__ import annotations

from tidings.apps.desks.db import OverlapViolation, Row, Tx
from tidings.apps.desks.errors import DeskError
from tidings.apps.desks.repository import lock_desk, log, same_rooms
from tidings.bus.base import DeskChangeEvent as Change
from tidings.store.base import now_ms

FOREVER = 2**63 - 1
MAX_BOOKING_MS = 30 * 86_400_000  # a reservation spans at most 30 days

_OVERLAP = """
SELECT id, user_id, reservation_type FROM workstation_occupancy
WHERE workstation_id = $1 AND status = 'active'
  AND start_time < $3 AND COALESCE(end_time, $4) > $2
LIMIT 1"""

_INSERT_BOOKING = """
INSERT INTO workstation_occupancy (workstation_id, user_id, start_time, end_time,
                                   reservation_type, status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'active', $6, $6)
RETURNING id, workstation_id, user_id, start_time, end_time, reservation_type, status"""


async def _refuse_overlap(tx: Tx, desk_id: int, start: int, end: int | None) -> None:
    clash = await tx.fetchrow(_OVERLAP, desk_id, start, FOREVER if end is None else end, FOREVER)
    if clash is not None:
        raise DeskError(409, "BOOKING_CONFLICT",
                        f"workstation {desk_id} is booked (booking {clash['id']}, "
                        f"{clash['reservation_type']}) in that time")


async def _insert_booking(tx: Tx, desk_id: int, user_id: int, start: int, end: int | None,
                          kind: str) -> Row:
    try:
        row = await tx.fetchrow(_INSERT_BOOKING, desk_id, user_id, start, end, kind, now_ms())
    except OverlapViolation:  # another writer got past the check: the constraint holds
        raise DeskError(409, "BOOKING_CONFLICT",
                        f"workstation {desk_id} is booked in that time") from None
    assert row is not None
    return row


async def occupy(tx: Tx, desk_id: int, user_id: int, until: int | None) -> Change:
    """Occupy a desk from now (until ``until``, or until released).

    Refused (409) if it is occupied, out of service, or booked by someone else in
    that time; the caller's own current reservation turns into the occupancy.
    """
    desk = await lock_desk(tx, desk_id)
    now = now_ms()
    if desk["status"] == "occupied":
        raise DeskError(409, "WORKSTATION_OCCUPIED",
                        f"workstation {desk_id} is occupied by user {desk['occupied_by']}")
    if desk["status"] in ("maintenance", "disabled"):
        raise DeskError(409, "WORKSTATION_UNAVAILABLE",
                        f"workstation {desk_id} is {desk['status']}")
    if until is not None and until <= now:
        raise DeskError(422, "INVALID_BODY", "until must be in the future")
    await tx.fetch("""UPDATE workstation_occupancy SET status = 'completed', updated_at = $3
                      WHERE workstation_id = $1 AND user_id = $2 AND status = 'active'
                        AND reservation_type = 'scheduled' AND start_time <= $3
                        AND COALESCE(end_time, $4) > $3""", desk_id, user_id, now, FOREVER)
    await _refuse_overlap(tx, desk_id, now, until)
    await _insert_booking(tx, desk_id, user_id, now, until, "temporary")
    await tx.fetch("""UPDATE workstations SET status = 'occupied', occupied_by = $2,
                      occupied_at = $3, updated_at = $3 WHERE id = $1""", desk_id, user_id, now)
    await log(tx, desk_id, user_id, "occupy", "" if until is None else f"until {until}")
    return same_rooms("UPDATE", desk)


async def _idle_status(tx: Tx, desk_id: int, now: int) -> str:
    """``reserved`` while the desk has a reservation that has not ended, else ``available``."""
    upcoming = await tx.fetchrow(
        """SELECT id FROM workstation_occupancy WHERE workstation_id = $1 AND status = 'active'
           AND reservation_type = 'scheduled' AND COALESCE(end_time, $3) > $2 LIMIT 1""",
        desk_id, now, FOREVER)
    return "reserved" if upcoming is not None else "available"


async def release(tx: Tx, desk_id: int, user_id: int) -> Change:
    """End the caller's occupancy of a desk (403 if someone else occupies it)."""
    desk = await lock_desk(tx, desk_id)
    if desk["status"] != "occupied":
        raise DeskError(409, "WORKSTATION_NOT_OCCUPIED", f"workstation {desk_id} is not occupied")
    if desk["occupied_by"] != user_id:
        raise DeskError(403, "NOT_OCCUPANT", f"workstation {desk_id} is occupied by someone else")
    now = now_ms()
    # end_time must stay after start_time even when released in the same millisecond.
    await tx.fetch("""UPDATE workstation_occupancy
                      SET status = 'completed', updated_at = $2,
                          end_time = CASE WHEN start_time >= $2 THEN start_time + 1 ELSE $2 END
                      WHERE workstation_id = $1 AND status = 'active'
                        AND reservation_type <> 'scheduled' AND start_time <= $2""",
                   desk_id, now)
    status = await _idle_status(tx, desk_id, now)
    await tx.fetch("""UPDATE workstations SET status = $2, occupied_by = NULL,
                      occupied_at = NULL, updated_at = $3 WHERE id = $1""", desk_id, status, now)
    await log(tx, desk_id, user_id, "release")
    return same_rooms("UPDATE", desk)


async def reserve(tx: Tx, desk_id: int, user_id: int, start: int,
                  end: int) -> tuple[Change, Row]:
    """Book ``[start, end)``; refused (409) if it overlaps another active booking."""
    now = now_ms()
    if end <= start:
        raise DeskError(422, "INVALID_BODY", "end must be after start")
    if end <= now:
        raise DeskError(422, "INVALID_BODY", "the reservation is over already")
    if end - start > MAX_BOOKING_MS:
        raise DeskError(422, "INVALID_BODY", "a reservation spans at most 30 days")
    desk = await lock_desk(tx, desk_id)
    if desk["status"] in ("maintenance", "disabled"):
        raise DeskError(409, "WORKSTATION_UNAVAILABLE",
                        f"workstation {desk_id} is {desk['status']}")
    await _refuse_overlap(tx, desk_id, start, end)
    booking = await _insert_booking(tx, desk_id, user_id, start, end, "scheduled")
    if desk["status"] == "available":
        await tx.fetch("UPDATE workstations SET status = 'reserved', updated_at = $2 "
                       "WHERE id = $1", desk_id, now)
    await log(tx, desk_id, user_id, "reserve", f"booking {booking['id']}: {start}..{end}")
    return same_rooms("UPDATE", desk), booking


async def cancel_reservation(tx: Tx, desk_id: int, booking_id: int, user_id: int) -> Change:
    """Cancel one of the caller's active reservations of a desk."""
    desk = await lock_desk(tx, desk_id)
    booking = await tx.fetchrow(
        """SELECT id, user_id FROM workstation_occupancy WHERE id = $1 AND workstation_id = $2
           AND status = 'active' AND reservation_type = 'scheduled'""", booking_id, desk_id)
    if booking is None:
        raise DeskError(404, "BOOKING_NOT_FOUND", f"no active reservation {booking_id}")
    if booking["user_id"] != user_id:
        raise DeskError(403, "NOT_BOOKER", f"reservation {booking_id} is someone else's")
    now = now_ms()
    await tx.fetch("UPDATE workstation_occupancy SET status = 'cancelled', updated_at = $2 "
                   "WHERE id = $1", booking_id, now)
    if desk["status"] == "reserved":
        await tx.fetch("UPDATE workstations SET status = $2, updated_at = $3 WHERE id = $1",
                       desk_id, await _idle_status(tx, desk_id, now), now)
    await log(tx, desk_id, user_id, "cancel", f"booking {booking_id}")
    return same_rooms("UPDATE", desk)


async def bookings(tx: Tx, desk_id: int) -> list[Row]:
    """Active bookings of a desk, earliest first."""
    return await tx.fetch(
        """SELECT id, workstation_id, user_id, start_time, end_time, reservation_type, status
           FROM workstation_occupancy WHERE workstation_id = $1 AND status = 'active'
           ORDER BY start_time, id""", desk_id)
