"""``Refresh`` (14): a live connection takes a new credential, answered by ``RefreshRsp``.

A connection's credential expires (a JWT's ``exp``, an opaque token's ``expires_at``);
the gateway closes it with 4402 then (gateway/websocket.py). Before that the client
sends a new access token of the same user — or a refresh token (``tdr_``), which is
rotated here and whose new JWT and refresh token go back in the answer. The new
credential's expiry, scopes and token id (for revocation) replace the old ones; a
refused one changes nothing (``WS_AUTH_FAILED``), the old credential runs on.
"""

from __future__ import annotations

import logging

from tidings.auth.refresh import REFRESH_PREFIX
from tidings.auth.tokens import AuthError, Identity
from tidings.gateway.connection import Connection
from tidings.hub.chat import ChatService
from tidings.protocol.codes import ErrorCode, MsgType
from tidings.protocol.messages import RefreshPayload, RefreshResponsePayload

log = logging.getLogger(__name__)


class CredentialRefresh:
    """Handles ``Refresh`` frames."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    async def ws_refresh(self, conn: Connection, seq: int, payload: RefreshPayload) -> None:
        """Verify the new credential and put it on the connection, or refuse it."""
        svc = self.service
        token, refresh_token = "", ""
        try:
            if payload.token.startswith(REFRESH_PREFIX):
                pair = await svc.refresh.refresh(payload.token)
                token, refresh_token = pair.access_token, pair.refresh_token
                identity = await svc.auth.verify(token)
            else:
                identity = await svc.auth.verify(payload.token)
        except AuthError as exc:
            svc.error(conn, seq, ErrorCode.AUTH_FAILED, f"refresh refused: {exc}")
            return
        if identity.user_id != conn.user_id:
            svc.error(conn, seq, ErrorCode.AUTH_FAILED,
                      "refresh refused: the token is another user's")
            return
        self.apply(conn, identity)
        log.info("%s user %d: credential refreshed (expires %s)", conn.id, conn.user_id,
                 conn.credential_expires)
        svc.reply(conn, MsgType.REFRESH_RSP, seq,
                  RefreshResponsePayload(identity.expires_at, token, refresh_token))

    def apply(self, conn: Connection, identity: Identity) -> None:
        """Give ``conn`` the credential of ``identity`` (same user)."""
        conn.token_id, conn.scopes = identity.token_id, identity.scopes
        conn.credential_expires = self.service.credential_expiry(identity)
