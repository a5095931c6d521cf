"""The HTTP API (docs/protocol.md, "HTTP API") as typed async methods: accounts, chat history,
presence, publishing, channel history and presence, and access tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from tidings_client._errors import ConnectionLostError, HttpError
from tidings_client.http_types import (
    ChannelHistory,
    CreatedToken,
    CurrentToken,
    HistoryPage,
    IssuedJwt,
    LoggedIn,
    PublishResult,
    Registered,
    Subscriber,
    TokenInfo,
    UserPresence,
)

T = TypeVar("T")

Unset = msgspec.UnsetType
"""The type of :data:`UNSET`, the default of :meth:`HttpClient.update_token`'s fields."""
UNSET = msgspec.UNSET
"""A field left as it is (as opposed to None, which clears it)."""


class _Presence(msgspec.Struct):
    presence: list[UserPresence]


class _Results(msgspec.Struct):
    results: list[PublishResult]


class _Subscribers(msgspec.Struct):
    subscribers: list[Subscriber]


class _Tokens(msgspec.Struct):
    tokens: list[TokenInfo]


class _Revoked(msgspec.Struct):
    revoked: list[int]


class _ErrorBody(msgspec.Struct):
    code: str
    message: str


class _Error(msgspec.Struct):
    error: _ErrorBody


class HttpClient:
    """An async client of one server's HTTP API, as one user (after :meth:`login`, or
    with the ``token`` given).

    ``base_url`` is the server's root, e.g. ``http://127.0.0.1:8443``. Every method
    raises :class:`~tidings_client.HttpError` for an error answer (its ``status``,
    ``code`` and ``message``) and :class:`~tidings_client.ConnectionLostError` when the
    server cannot be reached or does not answer within ``timeout`` seconds.
    Use it as ``async with HttpClient(url) as api:`` or call :meth:`close`.
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        """Configure; the HTTP session is made on the first call (or ``session`` is used,
        and then not closed here)."""
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owned = session is None

    async def __aenter__(self) -> HttpClient:
        """Nothing to open: the session starts with the first call."""
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        """Close; see :meth:`close`."""
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (if this client made it)."""
        if self._session is not None and self._owned:
            await self._session.close()
        self._session = None

    # accounts

    async def register(self, username: str, password: str) -> Registered:
        """Create an account (``409 USERNAME_TAKEN`` if the name is used)."""
        return await self._call("POST", "/api/v1/auth/register", Registered,
                                body={"username": username, "password": password}, auth=False)

    async def login(self, username: str, password: str,
                    device_id: str | None = None) -> LoggedIn:
        """Log in; the token (issued for ``device_id`` when given) is kept for later calls."""
        body: dict[str, Any] = {"username": username, "password": password}
        if device_id is not None:
            body["device_id"] = device_id
        answer = await self._call("POST", "/api/v1/auth/login", LoggedIn, body=body, auth=False)
        self.token = answer.token
        return answer

    async def issue_jwt(self, username: str, password: str, *, device_id: str | None = None,
                        scopes: Sequence[str] | None = None) -> IssuedJwt:
        """Log in for a short-lived JWT and a refresh token (the server needs
        ``jwt_secret`` or ``jwt_private_key_file``); the JWT is kept for later calls."""
        body: dict[str, Any] = {"username": username, "password": password}
        if device_id is not None:
            body["device_id"] = device_id
        if scopes is not None:
            body["scopes"] = list(scopes)
        answer = await self._call("POST", "/api/v1/auth/token", IssuedJwt, body=body,
                                  auth=False)
        self.token = answer.token
        return answer

    async def refresh_jwt(self, refresh_token: str) -> IssuedJwt:
        """Trade a refresh token for a new JWT and refresh token (the one given is used
        up; ``401 INVALID_REFRESH_TOKEN`` if it was used before). The JWT is kept."""
        answer = await self._call("POST", "/api/v1/auth/refresh", IssuedJwt,
                                  body={"refresh_token": refresh_token}, auth=False)
        self.token = answer.token
        return answer

    # chats and presence

    async def history(self, peer: int, *, before: int | None = None,
                      limit: int = 50) -> HistoryPage:
        """One page of the chat history with user ``peer``, newest first."""
        return await self._call("GET", "/api/v1/messages", HistoryPage,
                                params={"peer": peer, "before": before, "limit": limit})

    async def presence(self, user_ids: Sequence[int]) -> list[UserPresence]:
        """The statuses of these users (yourself and your peers)."""
        answer = await self._call("GET", "/api/v1/presence", _Presence,
                                  params={"user_ids": ",".join(map(str, user_ids))})
        return answer.presence

    # channels

    async def publish(self, channel: str, data: Any, *, type: str = "message",
                      idempotency_key: str | None = None) -> PublishResult:
        """Publish ``data`` (any JSON value) on ``channel``; answers once stored.
        Repeating an ``idempotency_key`` publishes once (``duplicate`` True)."""
        body = {"channel": channel, "data": data, "type": type,
                "idempotency_key": idempotency_key}
        return await self._call("POST", "/api/v1/publish", PublishResult, body=body)

    async def publish_to_users(self, user_ids: Sequence[int], data: Any, *,
                               type: str = "message",
                               idempotency_key: str | None = None) -> list[PublishResult]:
        """Publish on each user's personal channel ``user:<id>``."""
        body = {"user_ids": list(user_ids), "data": data, "type": type,
                "idempotency_key": idempotency_key}
        return (await self._call("POST", "/api/v1/publish", _Results, body=body)).results

    async def channel_history(self, channel: str, *, since: int = 0,
                              limit: int = 100) -> ChannelHistory:
        """Retained publications of ``channel`` after offset ``since``, oldest first."""
        return await self._call("GET", f"/api/v1/channels/{quote(channel, safe='')}/history",
                                ChannelHistory, params={"since": since, "limit": limit})

    async def channel_presence(self, channel: str) -> list[Subscriber]:
        """Who is subscribed to ``channel`` (namespaces that keep presence)."""
        answer = await self._call(
            "GET", f"/api/v1/channels/{quote(channel, safe='')}/presence", _Subscribers)
        return answer.subscribers

    # access tokens

    async def create_token(self, name: str = "", *, scopes: Sequence[str] | None = None,
                           expires_in: float | None = None, device_id: str | None = None,
                           device_info: Mapping[str, str] | None = None,
                           user_id: int | None = None) -> CreatedToken:
        """Create a token (``scopes`` e.g. ``["publish:news:*"]``; None: every right;
        ``expires_in`` in seconds). Its secret is in the answer, this once."""
        body = {"name": name, "scopes": None if scopes is None else list(scopes),
                "expires_in": expires_in, "device_id": device_id,
                "device_info": None if device_info is None else dict(device_info),
                "user_id": user_id}
        return await self._call("POST", "/api/v1/tokens", CreatedToken, body=body)

    async def tokens(self, user_id: int | None = None) -> list[TokenInfo]:
        """Your tokens (an admin: ``user_id``'s)."""
        answer = await self._call("GET", "/api/v1/tokens", _Tokens, params={"user_id": user_id})
        return answer.tokens

    async def current_token(self) -> CurrentToken:
        """The token these calls are made with."""
        return await self._call("GET", "/api/v1/tokens/current", CurrentToken)

    async def get_token(self, token_id: int) -> TokenInfo:
        """One of your tokens."""
        return await self._call("GET", f"/api/v1/tokens/{token_id}", TokenInfo)

    async def update_token(self, token_id: int, *, name: str | Unset = UNSET,
                           scopes: Sequence[str] | Unset | None = UNSET,
                           expires_at: int | Unset | None = UNSET,
                           device_id: str | Unset | None = UNSET,
                           device_info: Mapping[str, str] | Unset = UNSET) -> TokenInfo:
        """Change the fields given (``expires_at`` in ms since the epoch, None: never;
        ``scopes`` None: every right)."""
        body: dict[str, Any] = {}
        if not isinstance(name, Unset):
            body["name"] = name
        if not isinstance(scopes, Unset):
            body["scopes"] = None if scopes is None else list(scopes)
        if not isinstance(expires_at, Unset):
            body["expires_at"] = expires_at
        if not isinstance(device_id, Unset):
            body["device_id"] = device_id
        if not isinstance(device_info, Unset):
            body["device_info"] = dict(device_info)
        return await self._call("PATCH", f"/api/v1/tokens/{token_id}", TokenInfo, body=body,
                                keep_none=True)

    async def revoke_token(self, token_id: int) -> list[int]:
        """Revoke a token (connections using it close with 4403); the ids revoked now."""
        return (await self._call("DELETE", f"/api/v1/tokens/{token_id}", _Revoked)).revoked

    async def revoke_tokens(self, token_ids: Sequence[int]) -> list[int]:
        """Revoke several tokens; unknown or already revoked ids are skipped."""
        answer = await self._call("POST", "/api/v1/tokens/revoke", _Revoked,
                                  body={"ids": list(token_ids)})
        return answer.revoked

    # the one place that talks HTTP

    async def _call(self, method: str, path: str, type_: type[T], *,
                    params: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None,
                    auth: bool = True, keep_none: bool = False) -> T:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        data = None
        if body is not None:
            # Absent, not null, is how the API spells "the default" (PATCH: "unchanged").
            sent = body if keep_none else {k: v for k, v in body.items() if v is not None}
            data = msgspec.json.encode(sent)
            headers["Content-Type"] = "application/json"
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(method, self.base_url + path, params=query,
                                             data=data, headers=headers,
                                             timeout=self._timeout) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionLostError(f"{method} {path}: {exc!r}") from exc
        if status >= 400:
            raise _http_error(status, raw)
        try:
            return msgspec.json.decode(raw, type=type_)
        except msgspec.MsgspecError as exc:
            raise HttpError(status, "BAD_ANSWER", f"{method} {path}: {exc}") from None


def _http_error(status: int, raw: bytes) -> HttpError:
    try:
        error = msgspec.json.decode(raw, type=_Error).error
    except msgspec.MsgspecError:
        text = raw[:200].decode("utf-8", "replace").strip()
        return HttpError(status, f"HTTP_{status}", text or "no error body")
    return HttpError(status, error.code, error.message)
