"""A fan-out step's verdict: what counts as a rate the server sustained or kept up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.fanout import judge

RECORDED = Path(__file__).resolve().parents[2] / "bench/results/2026-12-07-0701-quiet-fanout.json"


def _step(**changes: Any) -> dict[str, Any]:
    step = {"publish_seconds": 1.49, "nominal_seconds": 1.5, "expected": 15_000,
            "delivered": 15_000, "closed": 0, "refused": 0, "p99_ms": 12.0}
    return {**step, **changes}


def test_a_complete_step_on_pace_passes_by_its_p99() -> None:
    assert judge(_step())["passed"] and judge(_step())["kept_up"]
    slow = judge(_step(p99_ms=120.0))
    assert not slow["passed"] and slow["kept_up"]
    assert not judge(_step(p99_ms=600.0))["kept_up"]


def test_a_late_publisher_a_missing_delivery_a_refusal_or_a_drop_fail_the_step() -> None:
    for changes in ({"publish_seconds": 1.7}, {"delivered": 14_999}, {"refused": 1},
                    {"closed": 1}):
        verdict = judge(_step(**changes))
        assert not verdict["passed"] and not verdict["kept_up"], changes
    assert not judge(_step(publish_seconds=1.7))["on_pace"]


def test_the_recorded_desk_editor_step_that_fell_behind_is_not_kept_up() -> None:
    """In the quiet run of 2026-12-07 07:01 the desk editor (one REST call at a time)
    sent the 576.6k deliveries/s step 1.43x and 1.94x late, and the old verdict counted
    it as kept up; Tidings' /ws publisher, which pipelines, kept its pace."""
    results = json.loads(RECORDED.read_text())["results"]
    for rep in results["tidings-socketio"]:
        top = next(s for s in rep["steps"] if s["target_deliveries_per_s"] == 576_650)
        assert top["kept_up"] and not judge(top)["kept_up"]
    for rep in results["tidings"]:
        top = next(s for s in rep["steps"] if s["target_deliveries_per_s"] == 576_650)
        assert judge(top)["kept_up"]
