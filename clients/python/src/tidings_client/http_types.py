"""The answers of the HTTP API (docs/protocol.md, "HTTP API") as typed structs.

Field names are the JSON names. Unknown fields are ignored, so that an older client
keeps working against a newer server that answers more.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from tidings_client.protocol.messages import ClientInfo, Message


class Registered(msgspec.Struct, frozen=True):
    """``POST /api/v1/auth/register``: the new account."""

    user_id: int
    username: str


class LoggedIn(msgspec.Struct, frozen=True):
    """``POST /api/v1/auth/login``: a token for the ``/ws`` protocol and the HTTP API."""

    token: str
    user_id: int
    expires_at: int | None  # milliseconds since the epoch; None: never


class IssuedJwt(msgspec.Struct, frozen=True):
    """``POST /api/v1/auth/token`` and ``/refresh``: a JWT (``token``, until
    ``expires_at`` ms) and the refresh token that renews it once."""

    token: str
    token_type: str
    expires_at: int
    refresh_token: str
    refresh_expires_at: int
    user_id: int


class HistoryPage(msgspec.Struct, frozen=True):
    """``GET /api/v1/messages``: messages with one peer, newest first.

    ``next_before``: pass it as ``before`` for the next (older) page; None on the last.
    """

    messages: list[Message]
    next_before: int | None


class UserPresence(msgspec.Struct, frozen=True):
    """One entry of ``GET /api/v1/presence``."""

    user_id: int
    status: str  # online, away or offline


class PublishResult(msgspec.Struct, frozen=True):
    """A stored publication (``duplicate``: its idempotency key had been used before)."""

    channel: str
    offset: int
    created_at: int
    duplicate: bool


class ChannelPublication(msgspec.Struct, frozen=True):
    """A retained publication, as ``GET /api/v1/channels/{name}/history`` gives it."""

    channel: str
    offset: int
    type: str
    data: Any
    info: ClientInfo
    created_at: int


class ChannelHistory(msgspec.Struct, frozen=True):
    """``GET /api/v1/channels/{name}/history``: retained publications after ``since``,
    oldest first. ``recovered`` False: retention already dropped some of them."""

    channel: str
    offset: int
    first_offset: int
    recovered: bool
    publications: list[ChannelPublication]
    has_more: bool


class Subscriber(msgspec.Struct, frozen=True):
    """One subscriber of ``GET /api/v1/channels/{name}/presence``."""

    user_id: int
    device_id: str


class TokenInfo(msgspec.Struct, frozen=True):
    """An access token as ``/api/v1/tokens`` shows it (never its secret, but on creation).

    ``scopes`` None: every right of its user. Times are milliseconds since the epoch.
    """

    id: int
    user_id: int
    name: str
    scopes: list[str] | None
    device_id: str | None
    device_info: dict[str, str] | None
    created_at: int
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None
    status: Literal["active", "expired", "revoked"]


class CreatedToken(TokenInfo, frozen=True):
    """``POST /api/v1/tokens``: the new token with its ``token`` secret, shown this once."""

    token: str


class CurrentToken(msgspec.Struct, frozen=True):
    """``GET /api/v1/tokens/current``: what the request was made with. ``kind`` "jwt":
    a signed token, not stored, so only ``user_id``, ``device_id`` and ``scopes`` are known."""

    kind: Literal["token", "jwt"]
    user_id: int
    device_id: str | None = None
    scopes: list[str] | None = None
    id: int | None = None
    name: str | None = None
    created_at: int | None = None
    expires_at: int | None = None
    status: str | None = None
