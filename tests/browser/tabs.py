"""Tabs in separate browser contexts (like two private windows: separate storage and
cookies), and helpers to drive the pages the way a person does."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser.conftest import CDP_TIMEOUT, Chromium, Page

NewTab = Callable[..., Awaitable[Page]]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture
async def new_tab(chromium: Chromium) -> AsyncIterator[NewTab]:
    """``await new_tab(url)``: a tab in a browser context of its own, on ``url``."""
    timeout = aiohttp.ClientTimeout(total=CDP_TIMEOUT)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{chromium.base}/json/version", timeout=timeout) as r:
            browser_url = (await r.json())["webSocketDebuggerUrl"]
        async with asyncio.timeout(CDP_TIMEOUT):
            browser = Page(await session.ws_connect(browser_url, max_msg_size=0))
        tabs: list[Page] = []
        contexts: list[str] = []

        async def open_(url: str, *, width: int = 1280, height: int = 800) -> Page:
            context = (await browser.send("Target.createBrowserContext"))["browserContextId"]
            contexts.append(context)
            target = await browser.send("Target.createTarget", {
                "url": "about:blank", "browserContextId": context})
            async with asyncio.timeout(CDP_TIMEOUT):
                ws = await session.ws_connect(
                    f"ws://127.0.0.1:{chromium.port}/devtools/page/{target['targetId']}",
                    max_msg_size=0)
            tab = Page(ws)
            tabs.append(tab)
            for domain in ("Page", "Runtime", "Log", "Network"):
                await tab.send(f"{domain}.enable")
            await tab.send("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
            await tab.goto(url)
            return tab

        try:
            yield open_
        finally:
            for tab in tabs:
                await tab.close()
            for context in contexts:
                with contextlib.suppress(Exception):
                    await browser.send("Target.disposeBrowserContext",
                                       {"browserContextId": context})
            await browser.close()


def js(value: Any) -> str:
    """A Python value as a JavaScript literal."""
    return json.dumps(value, ensure_ascii=False)


async def wait_for(tab: Page, expression: str, timeout: float = 10.0) -> Any:
    """Poll a JavaScript expression until it is truthy; return its value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await tab.run(expression)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout} s: {expression}\n"
                                 f"errors: {tab.errors}\nconsole: {tab.console[-10:]}")
        await asyncio.sleep(0.1)


async def type_into(tab: Page, element_id: str, text: str) -> None:
    """Set a field's value as typing would (an input event follows)."""
    await tab.run(f"""
        const el = document.getElementById({js(element_id)});
        el.focus();
        el.value = {js(text)};
        el.dispatchEvent(new Event("input", {{bubbles: true}}));
    """)


async def click(tab: Page, selector: str) -> None:
    """Click the element a CSS selector names."""
    await tab.run(f"document.querySelector({js(selector)}).click()")


async def screenshot(tab: Page, name: str, fallback: Path) -> Path:
    """Save a PNG of the tab: into docs/img/ when TIDINGS_SCREENSHOTS=1, else ``fallback``."""
    folder = DOCS_IMG if os.environ.get("TIDINGS_SCREENSHOTS") == "1" else fallback
    folder.mkdir(parents=True, exist_ok=True)
    shot = await tab.send("Page.captureScreenshot", {"format": "png"})
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
