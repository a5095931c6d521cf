"""`make chaos` rewrites its table in docs/reliability.md (tests/chaos/soak.py)."""

from __future__ import annotations

from tests.chaos.soak import heading_without


def test_the_soak_table_forgets_when_rows_ran_that_ran_again() -> None:
    heading = ("Run by `make chaos` on 2026-11-23 (load average 1.0/1.0/1.0 at the end). "
               "Rows “a”; “b”: run on 2026-12-01 (load average 2.5/2.0/1.5 at the end), "
               "after a fix. Rows “c”: run on 2026-12-02 (load average 3.0/3.0/3.0 at the "
               "end).")
    assert heading_without(heading, {"a", "b", "x"}) == (
        "Run by `make chaos` on 2026-11-23 (load average 1.0/1.0/1.0 at the end). Rows “c”: "
        "run on 2026-12-02 (load average 3.0/3.0/3.0 at the end).")
    assert heading_without(heading, {"a"}) == heading  # "b" still ran then
