"""The client's credential (mixed into :class:`~tidings_client.Client`): a token from
``get_token`` at connect, and a ``Refresh`` before it expires.

The server says in ``MsgAuthRsp.expires_at`` (and then in each ``RefreshRsp``) when the
connection's credential expires; it closes the connection with 4402 then. With a
``get_token`` callback the client asks it for a new token ``refresh_margin`` seconds
before (at most half the remaining lifetime before, for short tokens), sends it as
``Refresh`` on the open connection, and on any (re)connect whose known token has
expired or was refused with 4402. Without one, a 4402 ends the client like a refused
token (``AuthError``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tidings_client._errors import AuthError, ConnectionLostError, TidingsError
from tidings_client.protocol.codes import MsgType
from tidings_client.protocol.messages import Payload, RefreshPayload

if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

log = logging.getLogger("tidings_client")

TokenGetter = Callable[[], Awaitable[str]]
"""``async def get_token() -> str``: a fresh token for this user (a JWT from the
application's backend, ``HttpClient.refresh_jwt``, ...). Raise :class:`AuthError` if the
user may no longer connect; any other exception is retried with backoff."""

RETRY_SECONDS = 5.0
"""Longest wait before trying a failed refresh again (while the credential lasts)."""


class CredentialMethods:
    """Token handling of :class:`~tidings_client.Client` (mixed into it)."""

    token: str
    _get_token: TokenGetter | None
    _refresh_margin: float
    _expires_at: int | None
    _token_refused: bool

    if TYPE_CHECKING:
        async def _request(self, type_: MsgType, payload: Payload | None,
                           parse: Callable[[dict[str, Any]], T], *, resend: bool) -> T: ...

    @property
    def expires_at(self) -> int | None:
        """When the connection's credential expires (ms since the epoch), if it does."""
        return self._expires_at

    async def _token_for_connect(self) -> str:
        """The token for the next ``MsgAuth``: a new one from ``get_token`` when there is
        none yet, when the known one has expired, or after a 4402."""
        stale = self._expires_at is not None and time.time() * 1000 >= self._expires_at - 1000
        if self._get_token is not None and (not self.token or stale or self._token_refused):
            self.token = await self._call_get_token()
            self._expires_at, self._token_refused = None, False
        return self.token

    async def _call_get_token(self) -> str:
        assert self._get_token is not None
        try:
            token = await self._get_token()
        except TidingsError:
            raise
        except Exception as exc:
            raise ConnectionLostError(f"get_token failed: {exc!r}") from exc
        if not isinstance(token, str) or not token:
            raise AuthError("get_token returned no token")
        return token

    def _refresh_delay(self) -> float | None:
        if self._get_token is None or self._expires_at is None:
            return None
        remaining = self._expires_at / 1000 - time.time()
        return max(0.0, remaining - min(self._refresh_margin, remaining / 2))

    async def refresh(self) -> int | None:
        """Get a token from ``get_token`` and send it as ``Refresh`` now; return the new
        expiry (ms). Raise :class:`TidingsError` (``WS_AUTH_FAILED``) if it is refused."""
        token = await self._call_get_token()
        answer = await self._request(MsgType.REFRESH, RefreshPayload(token=token),
                                     lambda body: body, resend=False)
        self.token = answer.get("token") or token
        self._expires_at = answer.get("expires_at")
        return self._expires_at

    async def _refresh_loop(self) -> tuple[int, str]:
        """Refresh ahead of each expiry for as long as the connection lasts."""
        while True:
            delay = self._refresh_delay()
            if delay is None:
                await asyncio.get_running_loop().create_future()  # nothing to refresh
            await asyncio.sleep(delay or 0.0)
            try:
                await self.refresh()
            except (TidingsError, OSError) as exc:
                # The server closes with 4402 at expiry if no refresh succeeds by then;
                # the reconnect then asks get_token again.
                left = (self._expires_at or 0) / 1000 - time.time()
                log.warning("refreshing the token failed: %s", exc)
                await asyncio.sleep(min(RETRY_SECONDS, max(0.5, left / 4)))
