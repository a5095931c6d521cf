"""Validation errors in words: what a user sent wrong, without msgspec's type names
or the regular expressions behind a rule.

msgspec says ``Expected `str` matching regex '^[\\w.@-]+\\Z' - at `$.username```;
a user should read ``expected text made of letters, digits and . _ @ - (at
username)``. Every kind of constraint the project's types use is put in words:
a pattern (:data:`PATTERN_WORDS`; one not listed there reads "in the allowed
format", never the expression), a minimum or maximum length (characters, items or
entries), a range (at least, at most, greater than, less than), a multiple, an
enumeration or literal (with its allowed values when the type is known), a missing
or unknown field and a wrong type. Used by the command line, the settings and the
HTTP API (``read_json``: every 422 ``INVALID_BODY``).
"""

from __future__ import annotations

import re
from typing import Any

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

# What one element of each kind is, for length limits.
_UNITS = {"str": "characters", "array": "items", "object": "entries", "bytes": "bytes"}

# Regular expressions of the project's constrained types, as words following
# "expected text". tests/test_plain_errors.py fails if a request body type uses a
# pattern not listed here.
PATTERN_WORDS = {
    r"^[\w.@-]+\Z": "made of letters, digits and . _ @ -",
    r"\A[^\x00]*\Z": "without NUL characters",
    r"\A#[0-9a-fA-F]{6}\Z": "of # and six hexadecimal digits, such as #1a2b3c",
    r"\A[^\x00\s]+@[^\x00\s]+\Z": "that is an email address (name@domain, no spaces)",
    r"^[0-9]{1,19}$": "of 1 to 19 digits",
    r"\A[A-Za-z0-9_.:@/=+#~-]+\Z":
        "made of letters, digits and _ . : @ / = + # ~ - (a channel name)",
    r"\A[A-Za-z0-9_.:-]+\Z": "made of letters, digits and _ . : -",
    r"es_[A-Za-z0-9_-]{10,64}$":
        "that is an editing session id (es_ and 10 to 64 letters, digits, _ or -)",
    r"^[^/\s]+/[^/\s]+\Z": "that is a connection key, node/connection id (one /, no spaces)",
    r"^[\x20-\x7e]*\Z": "of printable ASCII characters only",
}

_TYPE = re.compile(r"`(\w+)`")
_REGEX = re.compile(r"matching regex '(.*?)'(?= - at |$)")
_AT = re.compile(r" - at `\$\.?(.*?)`$")
_LENGTH = re.compile(r"`(\w+)` of length ([<>]=) (\d+)")
_BOUND = re.compile(r"(`\w+`) ([<>]=?) (-?[\d.e+-]+)")
_ENUM = re.compile(r"^Invalid enum value (.*)$")
_COMPARE = {">=": "of at least", "<=": "of at most", ">": "greater than", "<": "less than"}


def _pattern(match: re.Match[str]) -> str:
    words = PATTERN_WORDS.get(match.group(1).replace("\\\\", "\\"))
    return words or "in the allowed format"


def _type(match: re.Match[str]) -> str:
    return TYPE_WORDS.get(match.group(1), match.group(1))


def _length(match: re.Match[str]) -> str:
    kind, op, n = match.groups()
    return f"`{kind}` {_COMPARE[op]} {n} {_UNITS.get(kind, 'elements')}"


def _number(text: str) -> str:
    """``0.0`` as ``0``; other numbers as msgspec wrote them."""
    return text[:-2] if text.endswith(".0") else text


def _bound(match: re.Match[str]) -> str:
    kind, op, n = match.groups()
    return f"{kind} {_COMPARE[op]} {_number(n)}"


def in_words(exc: msgspec.MsgspecError | str, type_: Any = None) -> str:
    """``exc`` (a msgspec validation error) as one line of plain words; with the
    ``type_`` that was decoded, an enumeration's allowed values are named too."""
    text = " ".join(str(exc).split())
    where = path = ""
    at = _AT.search(text)
    if at:
        text = text[:at.start()]
        path = at.group(1)
        where = f" (at {path.replace('`', '')})" if path else ""
    enum = _ENUM.match(text)
    if enum:
        allowed = _allowed(type_, path) if type_ is not None else None
        text = f"{enum.group(1)} is not one of the allowed values"
        if allowed:
            text += ": " + ", ".join(allowed)
        return text + where
    text = _REGEX.sub(_pattern, text)
    text = _LENGTH.sub(_length, text)
    text = _BOUND.sub(_bound, text)
    text = (text.replace("that's a multiple of", "that is a multiple of")
            .replace("Object missing required field", "missing the required field")
            .replace("Object contains unknown field", "unknown field"))
    text = _TYPE.sub(_type, text)
    text = text.replace("Expected ", "expected ", 1)
    return text + where


_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _allowed(type_: Any, path: str) -> list[str] | None:
    """The values an enum or literal at ``path`` (``items[0].kind``) of ``type_``
    allows, or None if the path leads elsewhere."""
    try:
        info: Any = msgspec.inspect.type_info(type_)
    except Exception:  # not a type msgspec can describe
        return None
    for field, _index in _STEP.findall(path):
        info = _step(info, field or None)
        if info is None:
            return None
    return _values(info)


def _unwrap(info: Any) -> list[Any]:
    """The alternatives behind metadata and unions."""
    if isinstance(info, msgspec.inspect.Metadata):
        return _unwrap(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return [t for x in info.types for t in _unwrap(x)]
    return [info]


def _step(info: Any, field: str | None) -> Any:
    for t in _unwrap(info):
        if field is not None and isinstance(t, msgspec.inspect.StructType):
            for f in t.fields:
                if f.encode_name == field:
                    return f.type
        elif field is not None and isinstance(t, msgspec.inspect.DictType):
            return t.value_type
        elif field is None and isinstance(t, (msgspec.inspect.ListType,
                                              msgspec.inspect.SetType,
                                              msgspec.inspect.FrozenSetType,
                                              msgspec.inspect.VarTupleType)):
            return t.item_type
    return None


def _values(info: Any) -> list[str] | None:
    for t in _unwrap(info):
        if isinstance(t, msgspec.inspect.EnumType):
            return [repr(m.value) for m in t.cls]
        if isinstance(t, msgspec.inspect.LiteralType):
            return [repr(v) for v in t.values]
    return None
