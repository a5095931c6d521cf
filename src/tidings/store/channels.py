"""Records of the channel log (the broker of seed 003), shared by every store backend.

A channel is an ordered log: each publication gets the next *offset* of its
channel (1, 2, 3, …), and offsets commit in offset order, so a subscriber that
has seen offset N never later finds a new publication below N. Retention keeps
at most ``max_count`` publications per channel, none older than ``max_age_ms``;
offsets are never reused, so a gap between what a client saw and the oldest
publication still kept tells it that history was lost.
"""

from __future__ import annotations

import time

import msgspec

IDEMPOTENCY_WINDOW_MS = 5 * 60 * 1000
"""A repeated ``idempotency_key`` within this window returns the first result."""


class Retention(msgspec.Struct, frozen=True):
    """How much history a channel keeps: at most ``max_count`` publications, none
    older than ``max_age_ms``. ``max_count`` 0 keeps nothing (live delivery only)."""

    max_count: int
    max_age_ms: int


class NewPublication(msgspec.Struct, frozen=True):
    """A publication to append. ``data`` is JSON text; ``publisher_device`` is the
    publishing connection's device, or ``"http"``."""

    channel: str
    type: str
    data: str
    publisher_id: int
    publisher_device: str
    retention: Retention
    idempotency_key: str | None = None


class Publication(msgspec.Struct, frozen=True):
    """A stored publication."""

    channel: str
    offset: int
    type: str
    data: str
    publisher_id: int
    publisher_device: str
    created_at: int


class PublishResult(msgspec.Struct, frozen=True):
    """Outcome of appending one :class:`NewPublication`.

    ``duplicate``: the channel saw the same ``idempotency_key`` within
    :data:`IDEMPOTENCY_WINDOW_MS`; ``offset`` and ``created_at`` are then those of
    the first publication, and ``publication`` is None (it was not stored again).
    """

    channel: str
    offset: int
    created_at: int
    duplicate: bool
    publication: Publication | None


class ChannelPage(msgspec.Struct, frozen=True):
    """Part of a channel's log, and where the log stands.

    ``top_offset``: the channel's last offset (0 if nothing was ever published).
    ``first_offset``: the oldest offset still retained; ``top_offset + 1`` when
    nothing is. Publications after offset N are complete iff ``N + 1 >= first_offset``.
    """

    publications: list[Publication]
    top_offset: int
    first_offset: int


class ChannelCount(msgspec.Struct, frozen=True):
    """One channel in the statistics: publications ever and still retained."""

    channel: str
    published: int
    retained: int


class DailyCount(msgspec.Struct, frozen=True):
    """Publications of one type on one UTC day (``YYYY-MM-DD``)."""

    day: str
    type: str
    count: int


class BrokerStats(msgspec.Struct, frozen=True):
    """What ``GET /api/v1/stats`` reads from the store."""

    channels: list[ChannelCount]
    daily: list[DailyCount]


KeyRef = tuple[str, str]
"""(channel, idempotency_key)."""


class AppendPlan(msgspec.Struct):
    """What appending a batch writes, worked out once for every backend by
    :func:`plan_appends`; the backend only runs the statements."""

    results: list[PublishResult]
    stored: list[Publication]  # to insert (channels that keep history)
    keys: list[tuple[str, str, int, int]]  # (channel, key, offset, created_at) to upsert
    tops: dict[str, int]  # channel -> new top offset
    counts: dict[tuple[str, str], int]  # (day, type) -> publications
    trims: dict[str, tuple[int, int]]  # channel -> (drop offsets <= this, drop created before)


def utc_day(at_ms: int) -> str:
    """The UTC day of a time in ms, as ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.gmtime(at_ms / 1000))


def plan_appends(batch: list[NewPublication], tops: dict[str, int],
                 known_keys: dict[KeyRef, tuple[int, int]], now: int) -> AppendPlan:
    """Assign offsets and resolve idempotency keys for a batch, in input order.

    ``tops``: the current top offset of every channel of the batch (0 if new);
    ``known_keys``: stored ``(offset, created_at)`` of the batch's idempotency keys.
    """
    tops = dict(tops)
    known = dict(known_keys)
    plan = AppendPlan([], [], [], tops, {}, {})
    day = utc_day(now)
    window_start = now - IDEMPOTENCY_WINDOW_MS
    for item in batch:
        ref = (item.channel, item.idempotency_key) if item.idempotency_key else None
        if ref is not None and (first := known.get(ref)) is not None and first[1] >= window_start:
            plan.results.append(PublishResult(item.channel, first[0], first[1], True, None))
            continue
        offset = tops.get(item.channel, 0) + 1
        tops[item.channel] = offset
        publication = Publication(item.channel, offset, item.type, item.data,
                                  item.publisher_id, item.publisher_device, now)
        plan.results.append(PublishResult(item.channel, offset, now, False, publication))
        if item.retention.max_count > 0:
            plan.stored.append(publication)
        if ref is not None:
            known[ref] = (offset, now)
            plan.keys.append((item.channel, ref[1], offset, now))
        plan.counts[(day, item.type)] = plan.counts.get((day, item.type), 0) + 1
        plan.trims[item.channel] = (offset - item.retention.max_count,
                                    now - item.retention.max_age_ms)
    return plan
