"""The desk map app at /desks/ over real HTTP: its built page under the strict CSP, its
hashed assets, client-side routes, the old address's redirect, and a clear answer when
the app has not been built."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.desk_map import desk_map_built
from tests.support.server import RunningServer
from tidings.web import desk_map_app

__all__ = ["desk_map_built"]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningServer]:
    server = await RunningServer(f"sqlite:///{tmp_path / 'web.db'}").start()
    try:
        yield server
    finally:
        await server.stop()


async def fetch(node: RunningServer, path: str) -> tuple[int, dict[str, str], str]:
    assert node.http is not None
    async with node.http.get(node.http_url + path, allow_redirects=False) as r:
        return r.status, dict(r.headers), await r.text()


@pytest.mark.usefixtures("desk_map_built")
async def test_the_built_app_is_served_under_the_strict_policy(node: RunningServer) -> None:
    for path in ("/desks/", "/desks/monitor", "/desks/login"):  # client-side routes
        status, headers, text = await fetch(node, path)
        assert status == 200, path
        assert headers["Content-Type"].startswith("text/html")
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe" not in policy
        assert "<script>" not in text  # no inline script: only <script type=module src=…>
        assets = re.findall(r'(?:src|href)="(/desks/assets/[^"]+)"', text)
        assert assets, text
    for asset in assets:
        status, headers, body = await fetch(node, asset)
        assert status == 200, asset
        assert "immutable" in headers["Cache-Control"]
        assert headers["Content-Type"].split(";")[0] in ("text/javascript", "text/css")
        assert "eval(" not in body and "new Function" not in body
    for bad in ("/desks/assets/nothing.js", "/desks/assets/..%2f..%2fpages.py",
                "/desks/assets/.hidden"):
        assert (await fetch(node, bad))[0] == 404, bad


async def test_the_old_address_and_the_bare_path_redirect(node: RunningServer) -> None:
    for path in ("/demo/desks", "/desks"):
        status, headers, _ = await fetch(node, path)
        assert (status, headers["Location"]) == (302, "/desks/")


async def test_an_unbuilt_app_answers_in_words(node: RunningServer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(desk_map_app, "BUILT", tmp_path / "nothing-here")
    status, headers, text = await fetch(node, "/desks/")
    assert status == 503
    assert "make desk-map" in text and "Content-Security-Policy" in headers
