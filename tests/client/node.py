"""A real ``tidings serve`` process with a throwaway SQLite file, for the tests of the
client distribution (HTTP API, blocking client, the installed wheel)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import NodeProcess


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node for the module, stopped (by PID) after it."""
    folder: Path = tmp_path_factory.mktemp("node")
    process = NodeProcess("client", folder, {}, ["--database-url",
                                                 f"sqlite:///{folder / 'tidings.db'}"])
    process.start(timeout=60)
    try:
        yield process
    finally:
        process.stop()
