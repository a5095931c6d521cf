"""The /ws frame parsers: aiohttp's C one (a private module, guarded) and our fallback.

``test_aiohttp_c_parser_still_fits`` is the loud failure the project's rules ask of a
private import: it fails on an aiohttp release whose ``aiohttp._websocket.reader``
no longer takes WsPeer's queue or parses differently (the node would still run, on
the slower fallback, and log why). The rest check the fallback against the C parser
frame by frame, with every byte split, and on every error the gateway answers.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from aiohttp import WSCloseCode, WSMsgType
from aiohttp.http_websocket import WebSocketError

from tidings.gateway import parser
from tidings.gateway.frames import FrameParser, unmask


class Queue(parser._Probe):
    """Records messages and errors, as WsPeer receives them."""


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"\x01\x02\x03\x04",
          rsv: int = 0) -> bytes:
    """One masked client frame."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + unmask(mask, payload)


def parse(data: bytes, *, c: bool, max_size: int = 1 << 20, step: int = 0) -> list[Any]:
    queue = Queue()
    reader: Any = (parser._Reader(queue, max_size, compress=False, decode_text=True) if c
                   else FrameParser(queue, max_size))
    chunks = [data[i:i + step] for i in range(0, len(data), step)] if step else [data]
    for chunk in chunks:
        reader.feed_data(chunk)
    return [(parser._plain(m), n) if n >= 0 else ("error", m.code) for m, n in queue.got]


STREAMS = {
    "text and binary": frame(1, "héllo".encode()) + frame(2, bytes(range(200))),
    "medium and long": frame(2, b"x" * 300) + frame(1, b"y" * 70000),
    "fragmented with a ping inside": (frame(1, b"ab", fin=False) + frame(9, b"p")
                                      + frame(0, b"cd", fin=False) + frame(0, b"e")),
    "pong and close with reason": frame(10, b"") + frame(8, struct.pack("!H", 4000) + b"bye"),
    "empty close": frame(8, b""),
    "reserved bits": frame(1, b"a", rsv=0x40),
    "unknown opcode": frame(3, b"a"),
    "fragmented control frame": frame(9, b"a", fin=False),
    "oversized control frame": frame(9, b"a" * 126),
    "invalid utf-8": frame(1, b"\xff\xfe"),
    "invalid utf-8 across fragments": frame(1, b"\xe2\x82", fin=False) + frame(0, b"\x28"),
    "continuation without start": frame(0, b"a"),
    "new message inside a fragmented one": frame(1, b"a", fin=False) + frame(2, b"b"),
    "invalid close code": frame(8, struct.pack("!H", 1005)),
    "one-byte close": frame(8, b"\x03"),
    "close reason not utf-8": frame(8, struct.pack("!H", 1000) + b"\xff"),
    "too big": frame(2, b"z" * 2000),
    "too big across fragments": frame(2, b"z" * 900, fin=False) + frame(0, b"z" * 900),
}


def test_aiohttp_c_parser_still_fits() -> None:
    if os.environ.get("TIDINGS_WS_PARSER"):
        pytest.skip("the fallback parser is forced")
    why = parser.probe()
    assert not why, (
        f"aiohttp's private WebSocket reader changed: {why}. /ws now parses in Python "
        "(slower). Re-check tidings.gateway.parser and wire.WsPeer against the new "
        "aiohttp, then run tests/hostile and tests/compliance (docs/architecture.md, "
        "'The frame parser').")
    assert parser.WHY_FALLBACK == ""


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_fallback_parses_as_aiohttp_does(name: str) -> None:
    data = STREAMS[name]
    expected = parse(data, c=True, max_size=1500 if "big" in name else 1 << 20)
    assert expected, name
    for step in (0, 1, 7):
        got = parse(data, c=False, max_size=1500 if "big" in name else 1 << 20, step=step)
        assert got == expected, (name, step)


def test_fallback_refuses_a_huge_frame_before_its_payload() -> None:
    queue = Queue()
    reader = FrameParser(queue, 1 << 20)
    reader.feed_data(struct.pack("!BBQ", 0x82, 0xFF, 1 << 40) + b"\0\0\0\0")
    assert [(type(m), m.code) for m, _ in queue.got] == [
        (WebSocketError, WSCloseCode.MESSAGE_TOO_BIG)]
    reader.feed_data(frame(1, b"after"))  # a failed parser reads nothing more
    assert len(queue.got) == 1


def test_fallback_hands_messages_to_wspeer_queue() -> None:
    queue = Queue()
    FrameParser(queue, 1024).feed_data(parser.PROBE_FRAMES)
    assert [(parser._plain(m), n) for m, n in queue.got] == [
        (parser._plain(m), n) for m, n in parser.PROBE_EXPECTED]
    assert queue.got[0][0].type is WSMsgType.TEXT


def test_make_parser_follows_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "WHY_FALLBACK", "forced by a test")
    assert isinstance(parser.make_parser(Queue(), 10), FrameParser)
    monkeypatch.setattr(parser, "WHY_FALLBACK", "")
    assert not isinstance(parser.make_parser(Queue(), 10), FrameParser)
