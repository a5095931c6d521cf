"""Token rows as SQL backends store them: scopes and device info as JSON text."""

from __future__ import annotations

from typing import Any

import msgspec

from .base import Token

_scopes = msgspec.json.Decoder(list[str] | None)
_device_info = msgspec.json.Decoder(dict[str, str])


def scopes_column(scopes: tuple[str, ...] | None) -> str | None:
    """The ``scopes`` column value: a JSON array, or NULL for "every right of the user"."""
    return None if scopes is None else msgspec.json.encode(list(scopes)).decode()


def token_from_row(row: Any) -> Token:
    """A :class:`Token` from the 11 columns ``id … last_used_at, scopes, device_info``."""
    scopes = None if row[9] is None else _scopes.decode(row[9])
    return Token(id=row[0], user_id=row[1], token_hash=row[2], name=row[3], device_id=row[4],
                 created_at=row[5], expires_at=row[6], revoked_at=row[7], last_used_at=row[8],
                 scopes=None if scopes is None else tuple(scopes),
                 device_info=_device_info.decode(row[10] or "{}"))
