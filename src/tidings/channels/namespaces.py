"""Namespaces: per-prefix rules for channels.

A channel's namespace is the part of its name before the first ``:``
(``room:lobby`` → ``room``); a name without ``:`` is in the namespace ``""``.
Each namespace says who may subscribe and publish, how much history its
channels keep, and whether subscribers are told of joins and leaves.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from tidings.store.channels import Retention

Rule = Literal["any", "owner", "admin", "none"]
"""``any``: every authenticated user; ``owner``: only the user whose id follows the
prefix (``user:42`` and ``user:42:…`` belong to user 42); ``admin``: only tokens
with the ``admin`` scope; ``none``: nobody over the API (admin tokens still may)."""


class Namespace(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The rules of one namespace."""

    subscribe: Rule = "any"
    publish: Rule = "any"
    history_size: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 100
    history_ttl: Annotated[float, msgspec.Meta(ge=0)] = 3600.0  # seconds
    presence: bool = False

    @property
    def retention(self) -> Retention:
        """What the store keeps of each channel."""
        return Retention(self.history_size, int(self.history_ttl * 1000))


def default_namespaces() -> dict[str, Namespace]:
    """The namespaces a server has when none are configured."""
    return {
        "": Namespace(),
        "room": Namespace(history_size=1000, history_ttl=86400.0, presence=True),
        "user": Namespace(subscribe="owner", publish="admin", history_size=1000,
                          history_ttl=7 * 86400.0),
        "broadcast": Namespace(publish="admin", history_size=100, history_ttl=86400.0),
        # The desk map's events (desks:floor:<id>, desks:dept:<id>); only the server publishes.
        "desks": Namespace(publish="none", history_size=100, history_ttl=3600.0),
    }


def namespace_name(channel: str) -> str:
    """The namespace of a channel name."""
    prefix, sep, _ = channel.partition(":")
    return prefix if sep else ""


def channel_owner(channel: str) -> int | None:
    """The user id an ``owner`` rule refers to: the part after the prefix, up to the
    next ``:``; None if it is not a user id."""
    _, sep, rest = channel.partition(":")
    owner = rest.partition(":")[0]
    if not sep or not (owner.isascii() and owner.isdigit()) or len(owner) > 19:
        return None
    return int(owner)
