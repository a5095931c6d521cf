"""How the connect hook composes with Tidings' own token check.

Order, on ``/ws`` (``MsgAuth``) and on Socket.IO's handshake alike:

1. Tidings verifies the token itself (opaque token or JWT) — it may fail.
2. The connect hook is asked with the token, ``user_id`` (the token's user, 0 if the
   token did not verify), the device asked for, the allowed headers and the address.
3. The hook refuses (the client is refused with its message, close 4401), or accepts:
   its ``user_id``/``device_id``/``scopes`` replace the token's where given, and its
   ``data`` goes back to the client in ``MsgAuthRsp.data``. A hook may so accept a
   client whose token Tidings does not know (the application's own session cookie or
   token): it then must name the ``user_id``, and that user must exist in the store.
4. If the backend fails and ``proxy_connect_on_error = "allow"``, the token alone
   decides, as if no hook were set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec

from tidings.auth.tokens import Authenticator, AuthError, Identity
from tidings.hooks.backend import HookRefused, Hooks
from tidings.store.base import Store


class ConnectResult(msgspec.Struct):
    """What a connect hook may set (``scopes``: null = every right, absent = keep)."""

    user_id: int | None = None
    device_id: str | None = None
    scopes: list[str] | msgspec.UnsetType | None = msgspec.UNSET
    data: Any = None


async def connect_identity(hooks: Hooks, store: Store, base: dict[str, Any], token: str,
                           device_id: str | None, identity: Identity | None,
                           token_error: AuthError | None) -> tuple[Identity, Any]:
    """The identity a connection gets, and the data for the client.

    ``base`` is the client's part of the request (client, transport, remote, headers).
    Raises :class:`AuthError` to refuse, and ``HookUnavailable`` if the backend failed
    and its failures refuse.
    """
    request = {**base, "token": token, "device_id": device_id,
               "user_id": identity.user_id if identity is not None else 0}
    try:
        answer = await hooks.call("connect", request)
    except HookRefused as exc:
        raise AuthError(f"refused by the application: {exc.message}") from None
    if answer is None:  # the backend failed and on_error = "allow": the token decides
        if identity is None:
            raise token_error or AuthError("no token")
        return replace(identity, device_id=device_id or identity.device_id), None
    try:
        result = msgspec.convert(answer, ConnectResult)
    except msgspec.ValidationError as exc:
        raise AuthError(f"the connect hook's result is invalid: {exc}") from None
    user_id = result.user_id or (identity.user_id if identity is not None else 0)
    if not 0 < user_id < 2**63:
        raise token_error or AuthError("the connect hook named no user")
    same = identity is not None and identity.user_id == user_id
    if not same and await store.get_user(user_id) is None:
        raise AuthError(f"the connect hook named user {user_id}, who does not exist")
    if isinstance(result.scopes, msgspec.UnsetType):
        scopes = identity.scopes if same and identity is not None else None
    else:
        scopes = tuple(result.scopes) if result.scopes is not None else None
    # The hook's device wins over the one MsgAuth asked for, which wins over the token's.
    return Identity(
        user_id=user_id,
        device_id=result.device_id or device_id or (
            identity.device_id if identity is not None else None),
        token_id=identity.token_id if same and identity is not None else None,
        scopes=scopes,
        expires_at=identity.expires_at if same and identity is not None else None), result.data


class SocketIoConnectHook:
    """The connect hook for Socket.IO handshakes (the desk map's sockets): the same
    composition as ``/ws``, with the handshake's token, headers and address."""

    def __init__(self, hooks: Hooks, store: Store, auth: Authenticator) -> None:
        self.hooks = hooks
        self.store = store
        self.auth = auth

    async def __call__(self, sid: str, token: str, environ: dict[str, Any]) -> Identity:
        """The handshake's identity; raises AuthError or ``HookUnavailable`` to refuse."""
        identity: Identity | None = None
        token_error: AuthError | None = None
        try:
            identity = await self.auth.verify(token) if token else None
        except AuthError as exc:
            token_error = exc
        if identity is None and token_error is None:
            token_error = AuthError("send auth: {token}")
        headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items()
                   if k.startswith("HTTP_")}
        request = environ.get("aiohttp.request")
        remote = getattr(request, "remote", None) or str(environ.get("REMOTE_ADDR", ""))
        base = {"client": sid, "transport": "socket.io", "remote": remote,
                "headers": self.hooks.pick_headers(headers)}
        found, _data = await connect_identity(self.hooks, self.store, base, token, None,
                                              identity, token_error)
        return found
