"""Proxies of client events to the application's backend (issue 21 item 1).

Each hook point — ``connect``, ``subscribe``, ``publish``, ``rpc`` — is off until its
``proxy_<hook>_url`` is set, or the module named by ``hooks_module`` defines a function
of that name. Either way the hook gets one JSON object (the request: who, from where,
what) and answers one JSON object:

- ``{"result": {...}}`` accepts (the result may carry what the hook may change:
  ``user_id``/``device_id``/``scopes``/``data`` for connect, ``data`` for publish/rpc);
- ``{"error": {"message": "...", "code": "..."}}`` refuses; the client is told the
  message.

Anything else — a timeout, a refused connection, a status other than 200, a body that
is not such an object, an exception raised by a Python hook — is the backend failing,
and ``proxy_<hook>_on_error`` says what happens: ``refuse`` (the default: the client
gets ``WS_BACKEND_UNAVAILABLE`` and may retry) or ``allow`` (the event goes on as if no
hook were set). ``rpc`` has nothing to fall back to and always refuses.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

import aiohttp
import msgspec

from tidings.config import Settings
from tidings.hooks.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

HookName = Literal["connect", "subscribe", "publish", "rpc"]
HOOK_NAMES: tuple[HookName, ...] = ("connect", "subscribe", "publish", "rpc")


class HookRefused(Exception):
    """The backend answered ``{"error": ...}``: the event is refused, with its words."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class HookUnavailable(Exception):
    """The backend did not answer usably (timeout, down, bad status or body)."""


class _Answer(msgspec.Struct):
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def load_module_hooks(dotted: str) -> dict[str, Callable[..., Any]]:
    """The hook functions (``connect``, ``subscribe``, ``publish``, ``rpc``) that the
    module ``dotted`` defines; ``ValueError`` with the reason if it cannot be imported."""
    if not dotted:
        return {}
    try:
        module = importlib.import_module(dotted)
    except Exception as exc:
        raise ValueError(f"invalid setting: hooks_module {dotted!r} cannot be imported: "
                         f"{exc}") from None
    return {name: fn for name in HOOK_NAMES
            if callable(fn := getattr(module, name, None))}


class Hooks:
    """This node's hooks: which are on, and the call to each."""

    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.proxy_timeout
        self.secret = settings.proxy_secret
        self.urls: dict[str, str] = {
            "connect": settings.proxy_connect_url, "subscribe": settings.proxy_subscribe_url,
            "publish": settings.proxy_publish_url, "rpc": settings.proxy_rpc_url}
        self.on_error: dict[str, str] = {
            "connect": settings.proxy_connect_on_error,
            "subscribe": settings.proxy_subscribe_on_error,
            "publish": settings.proxy_publish_on_error, "rpc": "refuse"}
        self.functions = load_module_hooks(settings.hooks_module)
        self._headers = {h.lower() for h in settings.proxy_headers}
        self._session: aiohttp.ClientSession | None = None

    def enabled(self, hook: HookName) -> bool:
        """True if ``hook`` calls a Python function or a URL."""
        return hook in self.functions or bool(self.urls[hook])

    @property
    def any(self) -> bool:
        """True if any hook is on (connections then keep their allowed headers)."""
        return any(self.enabled(h) for h in HOOK_NAMES)

    def pick_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The request headers named in ``proxy_headers`` (lower-case names)."""
        return {k.lower(): v for k, v in headers.items() if k.lower() in self._headers}

    def allows_on_error(self, hook: HookName) -> bool:
        """True if a failing backend lets ``hook``'s event go on."""
        return self.on_error[hook] == "allow"

    async def call(self, hook: HookName, request: dict[str, Any]) -> dict[str, Any] | None:
        """Ask the backend about one event.

        Returns the result object (accepted), or None if the backend failed and this
        hook's ``on_error`` is ``allow``. Raises :class:`HookRefused` if refused, and
        :class:`HookUnavailable` if the backend failed and ``on_error`` is ``refuse``.
        """
        try:
            answer = await self._ask(hook, request)
        except HookUnavailable as exc:
            log.warning("%s hook failed: %s", hook, exc)
            if self.allows_on_error(hook):
                return None
            raise
        if answer.error is not None:
            raise HookRefused(str(answer.error.get("message") or f"refused by the {hook} hook"),
                              str(answer.error.get("code") or ""))
        return answer.result or {}

    async def _ask(self, hook: HookName, request: dict[str, Any]) -> _Answer:
        function = self.functions.get(hook)
        if function is not None:
            try:
                out = function(request)
                if inspect.isawaitable(out):
                    out = await asyncio.wait_for(out, self.timeout)
                return msgspec.convert(out, _Answer)
            except (TimeoutError, msgspec.ValidationError) as exc:
                raise HookUnavailable(f"Python hook {hook}: {exc or 'timed out'}") from None
            except Exception as exc:
                log.exception("Python hook %s raised", hook)
                raise HookUnavailable(f"Python hook {hook} raised {exc!r}") from None
        return await self._post(self.urls[hook], hook, request)

    async def _post(self, url: str, hook: str, request: dict[str, Any]) -> _Answer:
        body = msgspec.json.encode(request)
        headers = {"Content-Type": "application/json", "X-Tidings-Hook": hook}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                    url, data=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                if response.status != 200:
                    raise HookUnavailable(f"{url} answered HTTP {response.status}")
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise HookUnavailable(f"{url}: {type(exc).__name__} {exc}".rstrip()) from None
        try:
            return msgspec.json.decode(raw, type=_Answer)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise HookUnavailable(f"{url} answered something else than "
                                  f'{{"result": ...}} or {{"error": ...}}: {exc}') from None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
