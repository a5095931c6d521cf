"""``tidings desks demo`` loads a building a person can look at, once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tidings.cli import main


def test_demo_loads_a_building_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDINGS_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    main(["desks", "demo", "--database-url", url, "--floors", "4", "--desks-per-floor", "75"])
    out = capsys.readouterr().out
    assert "4 floors, 6 departments, 30 employees, 300 workstations" in out
    with sqlite3.connect(tmp_path / "demo.db") as db:
        assert db.execute("SELECT count(*) FROM workstations").fetchone() == (300,)
        assert db.execute("SELECT count(DISTINCT floor_id) FROM workstations").fetchone() == (4,)
        # Desks of one floor never sit on top of each other.
        assert db.execute("SELECT count(*) FROM (SELECT DISTINCT floor_id, x_position, "
                          "y_position FROM workstations)").fetchone() == (300,)
        assert db.execute("SELECT name FROM workstations ORDER BY id LIMIT 1").fetchone() == \
            ("Engineering-001",)

    with pytest.raises(SystemExit, match="exists already"):
        main(["desks", "demo", "--database-url", url])
    with pytest.raises(SystemExit, match="--floors must be"):
        main(["desks", "demo", "--database-url", url, "--floors", "0"])
    main(["desks", "demo", "--database-url", url, "--building", "Annex", "--floors", "1",
          "--desks-per-floor", "10"])
    assert "'Annex'" in capsys.readouterr().out
