"""The channel-log part of the Store contract, on every backend (``store`` fixture)."""

from __future__ import annotations

import asyncio

from tidings.store import Store, now_ms
from tidings.store.channels import (
    IDEMPOTENCY_WINDOW_MS,
    NewPublication,
    PublishResult,
    Retention,
    utc_day,
)

KEEP = Retention(max_count=100, max_age_ms=3_600_000)


def pub(channel: str = "room:a", data: str = '"hi"', *, key: str | None = None,
        type_: str = "message", retention: Retention = KEEP) -> NewPublication:
    return NewPublication(channel, type_, data, 1, "phone", retention, key)


async def test_offsets_count_up_per_channel_in_input_order(store: Store) -> None:
    results = await store.append_publications(
        [pub("room:a", "1"), pub("room:b", "2"), pub("room:a", "3")])
    assert [(r.channel, r.offset) for r in results] == [("room:a", 1), ("room:b", 1),
                                                         ("room:a", 2)]
    more = await store.append_publications([pub("room:a", "4")])
    assert more[0].offset == 3 and not more[0].duplicate
    assert more[0].publication is not None and more[0].publication.data == "4"


async def test_read_channel_returns_publications_after_an_offset(store: Store) -> None:
    await store.append_publications([pub(data=str(i)) for i in range(1, 6)])
    page = await store.read_channel("room:a", 2, 10, 0)
    assert [p.offset for p in page.publications] == [3, 4, 5]
    assert [p.data for p in page.publications] == ["3", "4", "5"]
    assert (page.top_offset, page.first_offset) == (5, 1)
    first = page.publications[0]
    assert (first.channel, first.type, first.publisher_id, first.publisher_device) == (
        "room:a", "message", 1, "phone")
    limited = await store.read_channel("room:a", 0, 2, 0)
    assert [p.offset for p in limited.publications] == [1, 2]


async def test_an_unknown_channel_reads_as_empty(store: Store) -> None:
    page = await store.read_channel("room:nobody", 0, 10, 0)
    assert (page.publications, page.top_offset, page.first_offset) == ([], 0, 1)


async def test_retention_by_count_keeps_the_newest(store: Store) -> None:
    three = Retention(max_count=3, max_age_ms=3_600_000)
    await store.append_publications([pub(data=str(i), retention=three) for i in range(5)])
    page = await store.read_channel("room:a", 0, 10, 0)
    assert [p.offset for p in page.publications] == [3, 4, 5]
    assert (page.top_offset, page.first_offset) == (5, 3)


async def test_a_channel_without_history_still_counts_offsets(store: Store) -> None:
    none = Retention(max_count=0, max_age_ms=0)
    results = await store.append_publications([pub(retention=none), pub(retention=none)])
    assert [r.offset for r in results] == [1, 2]
    assert all(r.publication is not None for r in results)  # still delivered live
    page = await store.read_channel("room:a", 0, 10, 0)
    assert (page.publications, page.top_offset, page.first_offset) == ([], 2, 3)


async def test_publications_older_than_not_before_count_as_dropped(store: Store) -> None:
    await store.append_publications([pub(data="old")])
    cutoff = now_ms() + 1
    await asyncio.sleep(0.01)
    await store.append_publications([pub(data="new")])
    page = await store.read_channel("room:a", 0, 10, cutoff)
    assert [p.data for p in page.publications] == ["new"]
    assert (page.top_offset, page.first_offset) == (2, 2)


async def test_an_idempotency_key_publishes_once(store: Store) -> None:
    first = await store.append_publications([pub(data="a", key="k1")])
    again = await store.append_publications([pub(data="a", key="k1"), pub(data="b", key="k2")])
    assert again[0] == PublishResult("room:a", 1, first[0].created_at, True, None)
    assert again[1].offset == 2 and not again[1].duplicate
    other_channel = await store.append_publications([pub("room:b", key="k1")])
    assert other_channel[0].offset == 1 and not other_channel[0].duplicate
    page = await store.read_channel("room:a", 0, 10, 0)
    assert [p.data for p in page.publications] == ["a", "b"]


async def test_a_key_repeated_within_one_batch_publishes_once(store: Store) -> None:
    results = await store.append_publications([pub(key="k"), pub(key="k")])
    assert [(r.offset, r.duplicate) for r in results] == [(1, False), (1, True)]


async def test_a_key_outlives_its_trimmed_publication(store: Store) -> None:
    none = Retention(max_count=0, max_age_ms=0)
    await store.append_publications([pub(key="k", retention=none)])
    again = await store.append_publications([pub(key="k", retention=none)])
    assert again[0].duplicate and again[0].offset == 1


def test_the_idempotency_window_is_five_minutes() -> None:
    assert IDEMPOTENCY_WINDOW_MS == 300_000


async def test_broker_stats_count_by_channel_day_and_type(store: Store) -> None:
    two = Retention(max_count=2, max_age_ms=3_600_000)
    await store.append_publications(
        [pub("room:a", retention=two) for _ in range(3)] + [pub("room:b", type_="alert")])
    await store.append_publications([pub("room:b", key="x"), pub("room:b", key="x")])
    stats = await store.broker_stats()
    by_channel = {c.channel: (c.published, c.retained) for c in stats.channels}
    assert by_channel == {"room:a": (3, 2), "room:b": (2, 2)}
    today = utc_day(now_ms())
    assert {(d.day, d.type): d.count for d in stats.daily} == {
        (today, "message"): 4, (today, "alert"): 1}


async def test_concurrent_appends_to_one_channel_get_distinct_offsets(store: Store) -> None:
    batches = await asyncio.gather(*(store.append_publications([pub(data=str(i))])
                                     for i in range(20)))
    offsets = sorted(r.offset for b in batches for r in b)
    assert offsets == list(range(1, 21))
