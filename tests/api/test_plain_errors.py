"""422 answers say what is wrong in words, never with a regular expression or msgspec's
type names: every pattern a route's body uses has words (tidings/plain_errors.py), and
each kind of constraint (pattern, length, range, multiple, enumeration, field, type)
is put in words, through a real node's HTTP API too."""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

from tests.api.test_http import REGISTER, call, error_code
from tests.api.test_openapi import node_app
from tidings.api.openapi import OPERATIONS
from tidings.plain_errors import PATTERN_WORDS, in_words

# What a message in words never holds: regex syntax, msgspec's backquoted type names,
# its "$." paths and comparison signs.
_NOT_WORDS = re.compile(r"\\[AZwsd]|\[\^|\{\d|`|\$\.|[<>]=?|matching regex|Expected |enum")
_CANDIDATES = ("\x00", "has space", "x!", "!", "abc", "a" * 12, "\x00" * 12, "#12345g")


def _patterned(info: Any, path: str, seen: set[int]) -> list[tuple[str, Any]]:
    """(path, constrained string type) of every patterned string in a body type."""
    out: list[tuple[str, Any]] = []
    if isinstance(info, msgspec.inspect.Metadata):
        if isinstance(info.type, msgspec.inspect.StrType) and info.type.pattern:
            out.append((path, info))
        return out + _patterned(info.type, path, seen)
    if isinstance(info, msgspec.inspect.StrType) and info.pattern:
        return [(path, info)]
    if isinstance(info, msgspec.inspect.StructType):
        if id(info.cls) in seen:
            return []
        seen.add(id(info.cls))
        for f in info.fields:
            out += _patterned(f.type, f"{path}.{f.encode_name}", seen)
    elif isinstance(info, msgspec.inspect.UnionType):
        for t in info.types:
            out += _patterned(t, path, seen)
    elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType,
                           msgspec.inspect.VarTupleType, msgspec.inspect.FrozenSetType)):
        out += _patterned(info.item_type, f"{path}[0]", seen)
    elif isinstance(info, msgspec.inspect.DictType):
        out += _patterned(info.key_type, f"{path}{{key}}", seen)
        out += _patterned(info.value_type, f"{path}{{value}}", seen)
    return out


def _as_type(info: Any) -> Any:
    """A Python type that decodes like the described string (pattern and lengths)."""
    s = info.type if isinstance(info, msgspec.inspect.Metadata) else info
    return Annotated[str, msgspec.Meta(pattern=s.pattern, min_length=s.min_length,
                                       max_length=s.max_length)]


def test_every_pattern_in_a_route_body_is_refused_in_words(tmp_path: Path) -> None:
    node = node_app(tmp_path)
    bodies = {op.operation_id: op.body for op in node.app[OPERATIONS] if op.body is not None}
    found: dict[str, list[str]] = {}
    for op_id, body in bodies.items():
        for where, info in _patterned(msgspec.inspect.type_info(body), "$", set()):
            s = info.type if isinstance(info, msgspec.inspect.Metadata) else info
            found.setdefault(s.pattern, []).append(f"{op_id} {where}")
    assert len(found) >= 4 and sum(map(len, found.values())) >= 20, found  # the walk works
    unworded = {p: where for p, where in found.items() if p not in PATTERN_WORDS}
    assert not unworded, f"add these patterns to plain_errors.PATTERN_WORDS: {unworded}"
    for pattern, where in found.items():
        one = next(i for op in bodies.values()
                   for w, i in _patterned(msgspec.inspect.type_info(op), "$", set())
                   if (i.type if isinstance(i, msgspec.inspect.Metadata) else i).pattern
                   == pattern)
        refused = []
        for value in _CANDIDATES:  # a value of allowed length that the pattern refuses
            try:
                msgspec.convert(value, _as_type(one))
            except msgspec.ValidationError as exc:
                if "regex" in str(exc):
                    refused.append(in_words(exc))
        assert refused, (pattern, where)
        for words in refused:
            assert PATTERN_WORDS[pattern] in words and not _NOT_WORDS.search(words), words


class _Kind(enum.Enum):
    DESK = "desk"
    ROOM = "room"


class _Item(msgspec.Struct, forbid_unknown_fields=True):
    kind: _Kind = _Kind.DESK
    mode: Literal["fast", "safe"] = "fast"


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=2, max_length=4)] = "ab"
    count: Annotated[int, msgspec.Meta(ge=1, le=9, multiple_of=1)] = 1
    size: Annotated[float, msgspec.Meta(gt=0, lt=5)] = 1.0
    step: Annotated[int, msgspec.Meta(multiple_of=3)] = 3
    tags: Annotated[list[str], msgspec.Meta(min_length=1, max_length=2)] = \
        msgspec.field(default_factory=lambda: ["a"])
    info: Annotated[dict[str, str], msgspec.Meta(max_length=1)] = msgspec.field(
        default_factory=dict)
    items: list[_Item] = msgspec.field(default_factory=list)
    needed: int | None = None


@pytest.mark.parametrize(("body", "words"), [
    ({"name": "a"}, "expected text of at least 2 characters (at name)"),
    ({"name": "abcde"}, "expected text of at most 4 characters (at name)"),
    ({"count": 0}, "expected a whole number of at least 1 (at count)"),
    ({"count": 10}, "expected a whole number of at most 9 (at count)"),
    ({"size": 0}, "expected a number greater than 0 (at size)"),
    ({"size": 5.5}, "expected a number less than 5 (at size)"),
    ({"step": 4}, "expected a whole number that is a multiple of 3 (at step)"),
    ({"tags": []}, "expected a list of at least 1 items (at tags)"),
    ({"tags": ["a", "b", "c"]}, "expected a list of at most 2 items (at tags)"),
    ({"info": {"a": "1", "b": "2"}},
     "expected a table of names and values of at most 1 entries (at info)"),
    ({"items": [{}, {"kind": "car"}]},
     "'car' is not one of the allowed values: 'desk', 'room' (at items[1].kind)"),
    ({"items": [{"mode": "slow"}]},
     "'slow' is not one of the allowed values: 'fast', 'safe' (at items[0].mode)"),
    ({"count": "3"}, "expected a whole number, got text (at count)"),
    ({"extra": 1}, "unknown field extra"),
    ([], "expected a table of names and values, got a list"),
])
def test_each_kind_of_constraint_in_words(body: object, words: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(body, _Body)
    assert in_words(caught.value, _Body) == words
    assert not _NOT_WORDS.search(words)


async def test_a_422_from_the_api_is_in_words(server, http):
    status, answer, _ = await call(http, server, "POST", REGISTER,
                                   json={"username": "has space", "password": "long enough"})
    assert (status, error_code(answer)) == (422, "INVALID_BODY")
    message = answer["error"]["message"]
    assert message == "expected text made of letters, digits and . _ @ - (at username)"
    status, answer, _ = await call(http, server, "POST", REGISTER,
                                   json={"username": "carol", "password": "short"})
    assert answer["error"]["message"] == "expected text of at least 8 characters (at password)"
