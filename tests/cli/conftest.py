"""Fixtures for the CLI tests: a clean environment and working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray TIDINGS_* variables, and a scratch cwd so a default ./tidings.db
    never lands in the repository."""
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database (the file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'cli.db'}"
