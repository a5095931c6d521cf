"""Who may subscribe to or publish in a channel: token scopes and namespace rules.

Both must allow an action. A token's scopes are ``publish:<pattern>``,
``subscribe:<pattern>`` (shell-style patterns on the channel name, e.g.
``publish:room:*``) and ``admin``; a token without scopes (``None``: login
tokens, JWTs without a ``scopes`` claim) has every right its user has. An
``admin`` token may do anything, whatever the namespace rules say.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from tidings.channels.namespaces import Namespace, channel_owner, namespace_name

ADMIN = "admin"
Action = Literal["subscribe", "publish"]
SCOPE_ACTIONS = ("publish", "subscribe")


def is_admin(scopes: tuple[str, ...] | None) -> bool:
    """True for a token with the ``admin`` scope."""
    return scopes is not None and ADMIN in scopes


def valid_scope(scope: str) -> bool:
    """True for ``admin``, ``publish:<pattern>`` and ``subscribe:<pattern>``."""
    action, sep, pattern = scope.partition(":")
    return scope == ADMIN or (bool(sep) and action in SCOPE_ACTIONS and bool(pattern))


def scope_allows(scopes: tuple[str, ...] | None, action: Action, channel: str) -> bool:
    """Whether the token's scopes allow ``action`` on ``channel``."""
    if scopes is None or ADMIN in scopes:
        return True
    prefix = action + ":"
    return any(s.startswith(prefix) and fnmatchcase(channel, s[len(prefix):]) for s in scopes)


def denial(action: Action, channel: str, namespace: Namespace, user_id: int,
           scopes: tuple[str, ...] | None) -> str | None:
    """Why ``action`` on ``channel`` is refused, or None if it is allowed."""
    if not scope_allows(scopes, action, channel):
        return f"the token lacks the scope {action}:{channel} (or a pattern matching it)"
    if is_admin(scopes):
        return None
    rule = getattr(namespace, action)
    shown = namespace_name(channel) or "(no prefix)"
    if rule == "none":
        return f"namespace {shown!r} allows no client to {action}; it needs the admin scope"
    if rule == "admin":
        return f"to {action} in namespace {shown!r} the token needs the admin scope"
    if rule == "owner" and channel_owner(channel) != user_id:
        return f"only the user whose id follows {shown + ':'!r} may {action} to {channel!r}"
    return None
