"""What a valid value of each setting is, checked before anything starts.

Every setting gets a rule: the one named in :data:`RULES`, else one inferred from
its name and type (:func:`rule_for`) — a name ending in ``port`` is a TCP port, in
``_url`` a URL of a scheme listed in :data:`URL_SCHEMES`, in ``_timeout``,
``_ttl`` or ``_interval`` a positive duration, in ``_file`` a readable file (if
set); any other number must be finite and not negative. A new setting is thus
checked without code here; give it an entry in :data:`RULES` when the inferred
rule is too loose. A rule returns the problem in words, or None.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

Rule = Callable[[Any], str | None]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")

URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "database_url": ("sqlite", "postgresql", "postgres", "redis", "rediss"),
    "bus_url": ("memory", "redis", "rediss", "postgresql", "postgres"),
    "cache_url": ("redis", "rediss"),
    "jwks_url": ("http", "https"),
}
"""The schemes each URL setting accepts; a URL setting not listed takes any scheme."""


def whole(low: int, high: int | None = None) -> Rule:
    """A whole number in ``[low, high]``."""
    def rule(value: Any) -> str | None:
        if high is None:
            return None if value >= low else f"must be {low} or more"
        return None if low <= value <= high else f"must be from {low} to {high}"
    return rule


def number(low: float = 0.0, *, above: bool = False) -> Rule:
    """A finite number, at least ``low`` (or above it with ``above``)."""
    def rule(value: Any) -> str | None:
        if not math.isfinite(value):
            return "must be a finite number"
        if above and value <= low:
            return f"must be more than {low:g}"
        if value < low:
            return f"must be {low:g} or more"
        return None
    return rule


def one_of(*choices: str) -> Rule:
    """One of ``choices`` (any letter case)."""
    def rule(value: Any) -> str | None:
        if str(value).lower() in choices:
            return None
        return "must be one of " + ", ".join(choices)
    return rule


def port(value: Any) -> str | None:
    """A TCP port, 0 meaning "pick a free one"."""
    return None if 0 <= value <= 65535 else "must be a port number from 0 to 65535 (0: any free)"


def url(name: str, *, optional: bool = False) -> Rule:
    """A URL of a scheme :data:`URL_SCHEMES` allows for ``name``."""
    def rule(value: Any) -> str | None:
        if not value:
            return None if optional else "must not be empty"
        schemes = URL_SCHEMES.get(name)
        scheme, sep, rest = str(value).partition("://")
        if not sep or not scheme:
            allowed = "://, ".join(schemes or ("scheme",)) + "://"
            return f"is not a URL: expected {allowed}…"
        if schemes is not None and scheme.lower() not in schemes:
            return f"has scheme {scheme}://; expected " + "://, ".join(schemes) + "://"
        if scheme.lower() == "sqlite":
            return _sqlite_path(rest)
        if scheme.lower() not in ("memory",):
            try:
                parsed = urlsplit(str(value))
                parsed.port  # noqa: B018 - raises ValueError when out of range
            except ValueError as exc:
                return f"is not a valid URL ({exc})"
        return None
    return rule


def _sqlite_path(rest: str) -> str | None:
    if not rest.startswith("/") or rest == "/":
        return "must be sqlite:///relative/path.db or sqlite:////absolute/path.db"
    path = rest[1:]
    if path == ":memory:":
        return None
    folder = Path(path).parent
    if not folder.is_dir():
        return f"names a file in {str(folder)!r}, a folder that does not exist"
    if not os.access(folder, os.W_OK):
        return f"names a file in {str(folder)!r}, a folder this user cannot write"
    return None


def readable_file(value: Any) -> str | None:
    """Empty, or a file this process can read."""
    if not value:
        return None
    path = Path(str(value))
    if not path.is_file():
        return "names a file that does not exist"
    if not os.access(path, os.R_OK):
        return "names a file this user cannot read"
    return None


def at_least_one_item(value: Any) -> str | None:
    """Any list; its items must not be empty."""
    return "has an empty item" if any(not str(item).strip() for item in value) else None


RULES: dict[str, Rule] = {
    "log_level": one_of(*LOG_LEVELS),
    "log_format": one_of(*LOG_FORMATS),
    "database_url": url("database_url"),
    "bus_url": url("bus_url"),
    "cache_url": url("cache_url", optional=True),
    "workers": whole(1, 256),
    "max_connections_per_user": whole(1),
    "max_frame_bytes": whole(128),
    "max_body_bytes": whole(128),
    "send_queue_size": whole(1),
    "rate_limit": number(0, above=True),
    "rate_burst": whole(1),
    "http_rate_limit": number(0),  # 0: no limit
    "http_rate_burst": whole(1),
    "sync_page_size": whole(1, 10_000),
    "max_publication_bytes": whole(1),
}
"""Rules beyond what a setting's name and type imply."""


def rule_for(name: str, value: Any) -> Rule | None:
    """The rule checking setting ``name`` (currently ``value``), or None."""
    if name in RULES:
        return RULES[name]
    if isinstance(value, bool):
        return None
    if name == "port" or name.endswith("_port"):
        return port
    if name.endswith("_url"):
        return url(name, optional=True)
    if name.endswith("_file"):
        return readable_file
    if name.endswith(("_timeout", "_ttl", "_interval")):
        return number(0, above=True)
    if isinstance(value, int):
        return whole(0)
    if isinstance(value, float):
        return number(0)
    if isinstance(value, list):
        return at_least_one_item
    return None


def problems(values: dict[str, Any]) -> dict[str, str]:
    """The problem of each setting in ``values`` that breaks its rule."""
    found: dict[str, str] = {}
    for name, value in values.items():
        rule = rule_for(name, value)
        problem = rule(value) if rule is not None else None
        if problem:
            found[name] = problem
    return found
