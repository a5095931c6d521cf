"""Validation errors in words: what a user sent wrong, without msgspec's type names
or the regular expressions behind a rule.

msgspec says ``Expected `str` matching regex '^[\\w.@-]+\\Z' - at `$.username```;
a user should read ``expected text made of letters, digits and . _ @ - (at
username)``. Used by the command line, the settings and the HTTP API.
"""

from __future__ import annotations

import re

import msgspec

TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "array": "a list",
    "object": "a table of names and values",
    "null": "nothing (null)",
    "bytes": "bytes",
}

# Regular expressions of the project's constrained types, as words. A pattern not
# listed here is described as "text in the allowed format" (never shown).
PATTERN_WORDS = {
    r"^[\w.@-]+\Z": "letters, digits and . _ @ -",
}

_TYPE = re.compile(r"`(\w+)`")
_REGEX = re.compile(r"matching regex '(.*?)'(?= - at |$)")
_AT = re.compile(r" - at `\$\.?(.*?)`$")


def _pattern(match: re.Match[str]) -> str:
    words = PATTERN_WORDS.get(match.group(1).replace("\\\\", "\\"))
    return f"made of {words}" if words else "in the allowed format"


def _type(match: re.Match[str]) -> str:
    return TYPE_WORDS.get(match.group(1), match.group(1))


def in_words(exc: msgspec.ValidationError | str) -> str:
    """``exc`` (a msgspec validation error) as one line of plain words."""
    text = " ".join(str(exc).split())
    where = ""
    at = _AT.search(text)
    if at:
        text = text[:at.start()]
        where = f" (at {at.group(1).replace('`', '')})" if at.group(1) else ""
    text = _REGEX.sub(_pattern, text)
    text = (text.replace("of length >=", "of at least").replace("of length <=", "of at most")
            .replace("Object missing required field", "missing the required field")
            .replace("Object contains unknown field", "unknown field"))
    text = _TYPE.sub(_type, text)
    text = re.sub(r"of at (least|most) (\d+)", r"of at \1 \2 characters", text)
    text = text.replace("Expected ", "expected ", 1)
    return text + where
