"""The login view the chat and editing pages share (``wireLogin`` in
common.js), in real Chromium: a refusal is shown and stores nothing; registering logs
in, keeps the session under the page's own key and survives a reload."""

from __future__ import annotations

import pytest

from tests.browser.tabs import NewTab, click, new_tab, type_into, wait_for
from tests.support.server import RunningServer

__all__ = ["new_tab"]

PAGES = {  # path: (sessionStorage key, the view shown once logged in)
    "/demo/chat": ("tidings.chat", "chat-view"),
    "/demo/editing": ("tidings.editing", "editing-view"),
}


@pytest.mark.parametrize("path", list(PAGES))
async def test_the_login_form_refuses_then_registers_and_keeps_the_session(
        node: RunningServer, new_tab: NewTab, path: str) -> None:
    key, view = PAGES[path]
    stored = f"JSON.parse(sessionStorage.getItem('{key}'))"
    tab = await new_tab(node.http_url + path)
    await wait_for(tab, "!document.getElementById('login-view').hidden")

    await type_into(tab, "username", "nobody-at-all")
    await type_into(tab, "password", "correct horse")
    await tab.run("document.getElementById('login-form').requestSubmit()")
    await wait_for(tab, "document.getElementById('login-error').textContent === "
                        "'wrong username or password'")
    assert await tab.run(f"{stored} === null")

    await type_into(tab, "username", "  carol  ")  # trimmed
    await click(tab, "#register-button")
    await wait_for(tab, f"!document.getElementById('{view}').hidden")
    session = await tab.run(f"{stored}")
    assert session["username"] == "carol" and session["token"].startswith("tdg_")
    user = await node.node.store.get_user_by_name("carol")
    assert user is not None and session["userId"] == user.id
    if path == "/demo/chat":  # each login of the chat page is a device of its own
        assert session["deviceId"].startswith("web-")
    else:
        assert "deviceId" not in session
    assert await tab.run("document.getElementById('login-view').hidden")
    assert await tab.run("document.getElementById('password').value === ''")
    assert await tab.run("document.getElementById('login-error').textContent === ''")

    await tab.goto(node.http_url + path)  # the stored session logs in again
    await wait_for(tab, f"!document.getElementById('{view}').hidden")
    assert await tab.run(f"{stored}.token") == session["token"]
    # Chromium logs refused requests itself: the refused login.
    assert [e for e in tab.errors if "the server responded with a status of 4" not in e] == []
