"""Numbered-SQL migrations: file discovery, statement splitting, one transaction each."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from tidings.store import migrate
from tidings.store.migrate import list_migrations, migrate_sqlite, split_sqlite_script


@pytest.fixture
def migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the package's ``migrations/sqlite`` folder."""
    folder = tmp_path / "migrations" / "sqlite"
    folder.mkdir(parents=True)
    monkeypatch.setattr(migrate, "resources", SimpleNamespace(files=lambda package: tmp_path))
    return folder


@pytest.fixture
def conn(tmp_path: Path):
    connection = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    yield connection
    connection.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_shipped_migrations_are_listed_in_order_for_each_dialect():
    for dialect in migrate.DIALECTS:
        found = list_migrations(dialect)
        assert found and found[0].name == "0001_core"
        assert [m.version for m in found] == sorted({m.version for m in found})


def test_an_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="unknown migration dialect 'mysql'"):
        list_migrations("mysql")


def test_files_are_ordered_by_version_and_non_sql_files_are_ignored(migrations):
    (migrations / "0002_second.sql").write_text("CREATE TABLE b (x);")
    (migrations / "0001_first.sql").write_text("CREATE TABLE a (x);")
    (migrations / "README.md").write_text("not a migration")
    assert [m.name for m in list_migrations("sqlite")] == ["0001_first", "0002_second"]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql",
                                  "0001_.sql"])
def test_a_misnamed_migration_file_is_refused(migrations, name):
    (migrations / name).write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"is not named NNNN_name\.sql"):
        list_migrations("sqlite")


def test_two_migrations_with_one_version_are_refused(migrations):
    (migrations / "0001_a.sql").write_text("SELECT 1;")
    (migrations / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(ValueError, match="two sqlite migrations have version 1"):
        list_migrations("sqlite")


def test_a_script_splits_into_statements_around_quoted_semicolons(conn):
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    INSERT INTO t VALUES ('c;d');  /* trailing; comment */
    INSERT INTO t DEFAULT VALUES;
    """
    statements = split_sqlite_script(script)
    assert "'a;b'" in statements[0] and "'c;d'" in statements[1]
    assert all(sqlite3.complete_statement(s) for s in statements)
    for statement in statements:  # comment-only leftovers execute as no-ops
        conn.execute(statement)
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY rowid")] == ["c;d", "a;b"]


def test_migrations_apply_once_and_are_recorded(migrations, conn):
    (migrations / "0001_first.sql").write_text("CREATE TABLE a (x); INSERT INTO a VALUES (1);")
    assert migrate_sqlite(conn) == ["0001_first"]
    (migrations / "0002_second.sql").write_text("CREATE TABLE b (x);")
    assert migrate_sqlite(conn) == ["0002_second"]
    assert migrate_sqlite(conn) == []
    assert {"a", "b", "schema_migrations"} <= tables(conn)
    assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")
            ] == ["0001_first", "0002_second"]


def test_a_failing_migration_is_rolled_back_whole_and_earlier_ones_stay(migrations, conn):
    (migrations / "0001_good.sql").write_text("CREATE TABLE good (x);")
    (migrations / "0002_bad.sql").write_text(
        "CREATE TABLE half_done (x); INSERT INTO no_such_table VALUES (1);")
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate_sqlite(conn)
    assert not conn.in_transaction
    assert "good" in tables(conn) and "half_done" not in tables(conn)
    assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations")] == ["0001_good"]

    (migrations / "0002_bad.sql").write_text("CREATE TABLE half_done (x);")  # fixed
    assert migrate_sqlite(conn) == ["0002_bad"]
