"""The one Origin rule of every socket a browser opens (``/ws``, ``/socket.io``, the
editing socket) and of CORS on the REST API (docs/security.md, "Origins").

An Origin is allowed when the request has none (not a browser), when it names the
node's own host and port (``Host``), or when it is listed (``*`` = any). Origins
compare without case and without a trailing slash: a listed
``https://Chat.example.com/`` matches the ``https://chat.example.com`` browsers send.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def origin_key(origin: str) -> str:
    """``origin`` as compared: trimmed, lower-case, no trailing slash."""
    return origin.strip().rstrip("/").lower()


def origin_listed(origin: str, allowed: list[str]) -> bool:
    """True if ``origin`` is one of ``allowed`` (or ``allowed`` holds ``*``)."""
    return "*" in allowed or origin_key(origin) in {origin_key(a) for a in allowed}


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Browsers send Origin; a page from another site may connect only if listed."""
    if not origin or origin_listed(origin, allowed):
        return True
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()
