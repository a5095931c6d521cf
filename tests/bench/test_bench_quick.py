"""The benchmark harness itself still works: a tiny ``make bench-quick`` run.

It asserts what the harness measured, not how fast: every scenario produced a
result, the figures are internally consistent (a passing fan-out step delivered
every message to every subscriber), and nothing failed. Speed is for bench/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("cc") is None:
        pytest.skip("bench-quick needs node and a C compiler (bench/install.sh installs them)")
    subprocess.run(["bash", "bench/install.sh", "quick"], cwd=ROOT, check=True,
                   env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PY": sys.executable})
    out = tmp_path_factory.mktemp("bench")
    docs = out / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--subscribers", "20",
         "--connections", "40", "--out", str(out), "--docs", str(docs)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _result(out: Path, scenario: str) -> dict:
    [path] = out.glob(f"*-{scenario}.json")
    return json.loads(path.read_text())


def test_fanout_steps_deliver_every_message_to_every_subscriber(quick_run: Path) -> None:
    doc = _result(quick_run, "fanout")
    assert doc["subscribers"] == 20 and doc["machine"]["cores"] >= 1
    [rep] = doc["results"]["node-ws"]
    assert rep["steps"], "no fan-out step ran"
    for step in rep["steps"]:
        if step["kept_up"]:
            assert step["delivered"] == step["expected"] == step["publishes"] * 20
            assert step["closed"] == 0
    assert rep["max_kept_up_deliveries_per_s"] > 0
    assert rep["at_80pct"]["delivered"] > 0 and rep["at_80pct"]["p50_ms"] >= 0


def test_tidings_socketio_desk_events_reach_every_subscriber(quick_run: Path) -> None:
    # Seed 000's real path: REST edits of desks on floor 1 -> workstation_update to the room.
    [rep] = _result(quick_run, "fanout")["results"]["tidings-socketio"]
    kept = [s for s in rep["steps"] if s["kept_up"]]
    assert kept, rep["steps"]
    for step in kept:
        assert step["delivered"] == step["expected"] == step["publishes"] * 20
        assert step["closed"] == 0


def test_cluster_spreads_subscribers_and_delivers_through_the_bus(quick_run: Path) -> None:
    doc = _result(quick_run, "cluster")
    assert doc["layouts"] == {"2 nodes on 2 cores": ["0", "1"]}
    [rep] = doc["results"]["2 nodes on 2 cores"]
    assert rep["max_kept_up_deliveries_per_s"] > 0
    for step in rep["steps"]:
        if step["kept_up"]:  # half the subscribers are on the node that only hears the bus
            assert step["delivered"] == step["expected"] == step["publishes"] * 20


def test_idle_connections_are_all_ready_and_cost_memory(quick_run: Path) -> None:
    doc = _result(quick_run, "connections")
    for name in ("node-ws", "tidings"):
        [rep] = doc["results"][name]
        assert rep["ready"] == rep["connections"] == 40, rep
        assert rep["failed"] == rep["closed"] == 0
        assert rep["rss_after_mib"] >= rep["rss_before_mib"] > 0


def test_durable_chat_acks_every_chat_it_sent(quick_run: Path) -> None:
    [rep] = _result(quick_run, "chat")["results"]["sqlite"]
    assert rep["acked"] > 0 and rep["acked_per_s"] > 0
    assert rep["errors"] == rep["closed"] == rep["unacked_at_end"] == 0
    assert 0 <= rep["ack_p50_ms"] <= rep["ack_p99_ms"]


def test_open_loop_chat_sends_at_its_rate_whatever_the_acks_do(quick_run: Path) -> None:
    [rep] = _result(quick_run, "chat")["results"]["sqlite, open loop 1000/s"]
    assert rep["rate"] == 1000 and rep["window"] == 64
    assert rep["errors"] == rep["closed"] == rep["unacked_at_end"] == 0
    # Every chat that fell due was sent or counted as skipped: the rate, not the acks,
    # set the pace (the generator catches up on the clock if it was descheduled).
    assert rep["sent"] + rep["skipped"] >= 0.8 * rep["rate"] * rep["seconds"], rep
    assert rep["acked"] > 0
    assert 0 <= rep["ack_p50_ms"] <= rep["ack_p99_ms"]


def test_markdown_table_names_every_server(quick_run: Path) -> None:
    text = (quick_run / "benchmarks.md").read_text()
    assert "Node ws" in text and "Tidings /ws" in text and "Load average" in text
    assert "Tidings /socket.io" in text and "Cluster fan-out" in text


def test_reconnect_storm_resyncs_every_client_and_loses_nothing(quick_run: Path) -> None:
    doc = _result(quick_run, "storm")
    [rep] = doc["results"]
    assert rep["clients"] == 100 and rep["connections"] >= 200, rep
    assert rep["lost"] == rep["duplicated"] == rep["out_of_order"] == rep["phantom"] == 0
    assert rep["acked"] == rep["sent"] > 0 and rep["delivered"] == rep["expected_deliveries"]
    assert 0 < rep["node_up_s"] <= rep["reconnected_s"] <= rep["resynced_s"]
    [rate] = doc["auth_rate"]
    assert rate["clients"] == 100 and rate["auths_per_s"] > 0


async def test_chat_recipients_ack_every_push_with_chat_acks(tmp_path: Path) -> None:
    # bench --chat-acks: the C load generator answers each ChatPush with a MsgAck, and
    # the node stores every recipient device's cursor and marks the messages delivered.
    if shutil.which("cc") is None or shutil.which("taskset") is None:
        pytest.skip("the load generator needs a C compiler and taskset")
    import sqlite3

    from bench import chat

    db = tmp_path / "chat.db"
    rep = await chat.run(tmp_path, f"sqlite:///{db}", users=10, window=64, seconds=1.5,
                         warmup=0.5, rate=500, acks=True)
    assert rep["errors"] == rep["closed"] == rep["unacked_at_end"] == 0, rep
    assert rep["pushes_per_s"] > 0 and rep["delivery_acks_per_s"] == rep["pushes_per_s"], rep
    with sqlite3.connect(db) as conn:
        cursors = conn.execute("SELECT count(*), min(last_message_id) FROM device_cursors")
        [(devices, lowest)] = cursors.fetchall()
        [(delivered,)] = conn.execute(
            "SELECT count(*) FROM messages WHERE status = 'delivered'").fetchall()
    assert devices == 10 and lowest > 0 and delivered > 0
