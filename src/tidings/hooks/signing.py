"""The signature Tidings puts on every request to the application (proxies, webhooks).

``X-Tidings-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``:
the timestamp is signed with the body, so a receiver that also refuses stale ``t``
(five minutes by default) cannot be fed a replayed request (the scheme Stripe and
others use; Centrifugo's proxies rely on a static header or mTLS instead).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Tidings-Signature"
DEFAULT_TOLERANCE = 300.0
"""Seconds a receiver accepts between ``t`` and its own clock."""


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    """The header value signing ``body`` with ``secret`` at ``at`` (now by default)."""
    stamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, tolerance: float = DEFAULT_TOLERANCE,
           now: float | None = None) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    expected = sign(secret, body, stamp).split(",", 1)[1].removeprefix("v1=")
    return hmac.compare_digest(expected, parts.get("v1", ""))
