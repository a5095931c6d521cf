"""The outbox of the SQL stores (store/outbox.py): leases, retries, dead rows, replay,
purge; the events recorded beside the apps (webhooks/events.py); the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidings.bus.base import DeskChangeEvent, EditingEvent
from tidings.cli import main
from tidings.config import Settings
from tidings.store import Store, open_store
from tidings.store.base import now_ms
from tidings.store.outbox import Outbox
from tidings.webhooks.events import EVENTS, EventRecorder, wanted


def _outbox(store: Store) -> Outbox:
    assert isinstance(store, Outbox)
    return store


async def test_claims_lease_retry_dead_replay_and_purge(store: Store) -> None:
    box = _outbox(store)
    await box.outbox_add([("user.online", '{"user_id": 1}'), ("user.offline", '{"user_id": 1}')])
    now = now_ms()
    first = await box.outbox_claim("node-a", now, 10_000, 10)
    assert [r.event for r in first] == ["user.online", "user.offline"]
    assert await box.outbox_claim("node-b", now, 10_000, 10) == []  # leased to node-a
    # node-a dies holding them: once the lease runs out, node-b gets them
    taken = await box.outbox_claim("node-b", now + 10_001, 10_000, 10)
    assert [r.id for r in taken] == [r.id for r in first]
    await box.outbox_delivered([first[0].id], "node-a", now)  # a stale owner changes nothing
    assert (await box.outbox_list("pending", 10))[0].attempts == 0
    await box.outbox_delivered([taken[0].id], "node-b", now)
    assert not await box.outbox_failed(taken[1].id, "node-b", "HTTP 500", now + 50, 2)
    assert await box.outbox_claim("node-b", now + 49, 1000, 10) == []  # backing off
    again = await box.outbox_claim("node-b", now + 50, 1000, 10)
    assert await box.outbox_failed(again[0].id, "node-b", "HTTP 502", now + 99, 2)  # dead
    [dead] = await box.outbox_list("dead", 10)
    assert (dead.attempts, dead.last_error) == (2, "HTTP 502")
    assert dead.to_json()["data"] == {"user_id": 1}
    assert [r.state for r in await box.outbox_list(None, 10)] == ["dead", "delivered"]
    assert await box.outbox_replay(None, now) == 1
    assert await box.outbox_replay([dead.id], now) == 0  # pending already
    assert [r.attempts for r in await box.outbox_list("pending", 10)] == [0]
    assert await box.outbox_purge(now + 1) == 1  # the delivered one
    assert len(await box.outbox_list(None, 10, before_id=dead.id + 1)) == 1


async def test_the_recorder_tells_presence_takeovers_and_workstations(store: Store) -> None:
    box = _outbox(store)
    recorder = EventRecorder(box, wanted(["user.*", "takeover.*", "workstation.*"]))
    await recorder.presence(7, "online")
    await recorder.editing(EditingEvent(["s1"], "takeover_request", {"request": {"id": "r"}}))
    await recorder.editing(EditingEvent(["s1"], "editing_ended", {}))  # not a webhook
    await recorder.desks([DeskChangeEvent("INSERT", 3, floor_id=1, workstation_id="A-1"),
                          DeskChangeEvent("UPDATE", 4, table="floors")])  # floors: not told
    await recorder.add("message.stored", {})  # not wanted here
    rows = sorted(await box.outbox_list(None, 10), key=lambda r: r.id)
    assert [(r.event, r.to_json()["data"]) for r in rows] == [
        ("user.online", {"user_id": 7}), ("takeover.request", {"request": {"id": "r"}}),
        ("workstation.created", {"id": 3, "workstation_id": "A-1", "floor_id": 1,
                                 "department_id": None})]


def test_wanted_events() -> None:
    assert wanted(["*"]) == frozenset(EVENTS)
    assert wanted([]) == frozenset()
    assert "message.stored" not in wanted(Settings().webhook_events)  # opt-in
    assert wanted(["takeover.*", "message.read"]) == {
        "takeover.request", "takeover.response", "takeover.expired", "message.read"}
    with pytest.raises(ValueError, match="names no event"):
        wanted(["message.sent"])


async def test_cli_lists_and_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = open_store(url)
    await store.migrate()
    box = _outbox(store)
    await box.outbox_add([("publication", '{"channel": "room:a"}')])
    [row] = await box.outbox_claim("n", now_ms(), 1000, 1)
    assert await box.outbox_failed(row.id, "n", "HTTP 500", now_ms(), 1)
    await store.close()
    capsys.readouterr()
    await _cli(["webhooks", "list", "--state", "dead", "--json", "--database-url", url])
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["state"], r["last_error"]) for r in listed] == [
        (row.id, "dead", "HTTP 500")]
    await _cli(["webhooks", "list", "--database-url", url])
    assert "HTTP 500" in capsys.readouterr().out
    await _cli(["webhooks", "replay", str(row.id), "--database-url", url])
    assert capsys.readouterr().out == "replayed: 1\n"
    with pytest.raises(SystemExit, match="give webhook ids, or --dead"):
        await _cli(["webhooks", "replay", "--database-url", url])


async def _cli(argv: list[str]) -> None:
    """Run the CLI in a worker thread (it runs its own event loop)."""
    import asyncio

    await asyncio.to_thread(main, argv)
