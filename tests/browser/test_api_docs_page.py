"""/api/docs in real Chromium: the vendored Swagger UI renders this node's OpenAPI
document under the pages' strict Content-Security-Policy, with no console error and no
request to any other origin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.tabs import NewTab, new_tab, screenshot, wait_for
from tests.support.server import RunningServer

pytestmark = pytest.mark.asyncio
__all__ = ["new_tab"]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A node on SQLite: every app on, so every operation is on the page."""
    server = await RunningServer(f"sqlite:///{tmp_path / 'docs.db'}").start()
    try:
        yield server
    finally:
        await server.stop()


async def test_api_docs_renders_every_operation_offline(
        node: RunningServer, new_tab: NewTab, tmp_path: Path) -> None:
    assert node.http is not None
    async with node.http.get(node.http_url + "/api/docs") as r:
        assert r.status == 200 and r.content_type == "text/html"
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp  # no inline code, no eval
    async with node.http.get(node.http_url + "/api/openapi.json") as r:
        doc = await r.json()
    operations = sum(len(item) for item in doc["paths"].values())

    tab = await new_tab(node.http_url + "/api/docs")
    # Swagger UI fetched the document and drew one block per operation.
    shown = await wait_for(tab, f"document.querySelectorAll('.opblock').length === {operations}"
                                " && document.querySelectorAll('.opblock').length", 20.0)
    assert shown == operations
    assert await tab.run("document.querySelector('.info .title').textContent"
                         ".startsWith('Tidings HTTP API')")
    assert await tab.run("[...document.querySelectorAll('.opblock-summary-path')]"
                         ".some(e => e.textContent.includes('/api/v1/auth/login'))")
    # Open one operation: its parameters and schemas render too.
    await tab.run("document.querySelector('#operations-messages-getMessages "
                  ".opblock-summary-control').click()")
    await wait_for(tab, "document.querySelector('#operations-messages-getMessages "
                        ".parameters') !== null")
    await screenshot(tab, "api-docs.png", tmp_path / "api-docs.png")

    assert tab.errors == []  # console errors, CSP violations, failed loads
    origin = urlsplit(node.http_url).netloc
    assert tab.requests, "no request was recorded"
    foreign = [u for u in tab.requests
               if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != origin]
    assert foreign == []
    assert any(u.endswith("/api/openapi.json") for u in tab.requests)
