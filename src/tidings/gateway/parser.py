"""Which frame parser ``/ws`` uses: aiohttp's C one if it is there and fits, else ours.

aiohttp's ``WebSocketReader`` is public (``aiohttp.http_websocket.__all__``), but its C
build only accepts a queue that is an instance of ``WebSocketDataQueue``, which lives
in the private ``aiohttp._websocket.reader``. That is this project's one import of a
private module. It is guarded: the import, and a probe that feeds the reader a masked
text frame, a ping and a close frame through a queue subclassed as
:class:`~tidings.gateway.wire.WsPeer` is, must both succeed, or the gateway parses with
:class:`~tidings.gateway.frames.FrameParser` (public names only) and logs why once.
``tests/gateway/test_parser.py`` fails loudly when the probe does, so an aiohttp
release that changes the private module is seen in CI, not in production; and
``TIDINGS_WS_PARSER=python`` forces the fallback (the hostile suite runs both).
Why the C parser is kept at all: docs/architecture.md, "The frame parser".
"""

from __future__ import annotations

import logging
import os
from typing import Any

from aiohttp import WSMessage, WSMsgType

from tidings.gateway.frames import FrameParser

log = logging.getLogger(__name__)

QueueBase: Any = object  # WsPeer's first base: aiohttp's queue class when it is used
_Reader: Any = None
WHY_FALLBACK = ""  # empty while aiohttp's C parser is in use

try:
    from aiohttp._websocket.reader import WebSocketDataQueue as _Queue
    from aiohttp.http_websocket import WebSocketReader as _Reader
except ImportError as exc:  # pragma: no cover - only on an aiohttp that moved it
    WHY_FALLBACK = f"aiohttp's WebSocketDataQueue is gone ({exc})"
else:
    QueueBase = _Queue


class _Probe(QueueBase):  # type: ignore[misc]
    """A queue built the way WsPeer is, recording what the reader hands it."""

    _size = 0
    _limit = 0

    def __init__(self) -> None:
        self.got: list[tuple[Any, int]] = []

    def feed_data(self, data: Any, size: int) -> None:
        self.got.append((data, size))

    def set_exception(self, exc: BaseException, exc_cause: Any = None) -> None:
        self.got.append((exc, -1))


PROBE_FRAMES = (bytes.fromhex("818402040608") + bytes(a ^ b for a, b in
                                                       zip(b"tidi", b"\x02\x04\x06\x08",
                                                           strict=True))
                + bytes.fromhex("898000000000") + bytes.fromhex("88820000000003e8"))
PROBE_EXPECTED = [(WSMessage(WSMsgType.TEXT, "tidi", ""), 4),
                  (WSMessage(WSMsgType.PING, b"", ""), 0),
                  (WSMessage(WSMsgType.CLOSE, 1000, ""), 0)]


def _plain(msg: Any) -> Any:
    """A message as a comparable tuple (the C parser hands pings over as bytearray)."""
    if not isinstance(msg, WSMessage):
        return repr(msg)
    data = bytes(msg.data) if isinstance(msg.data, bytearray) else msg.data
    return (msg.type, data, msg.extra)


def probe() -> str:
    """Why aiohttp's reader cannot be used as WsPeer uses it ("" if it can)."""
    if WHY_FALLBACK:
        return WHY_FALLBACK
    try:
        queue = _Probe()
        reader = _Reader(queue, 1024, compress=False, decode_text=True)
        reader.feed_data(PROBE_FRAMES)
        got = [(_plain(m), n) for m, n in queue.got]
    except Exception as exc:  # any change in the private API's shape lands here
        return f"aiohttp's WebSocketReader no longer takes our queue ({exc!r})"
    if got != [(_plain(m), n) for m, n in PROBE_EXPECTED]:
        return f"aiohttp's WebSocketReader parsed the probe frames as {got!r}"
    return ""


def _choose() -> str:
    forced = os.environ.get("TIDINGS_WS_PARSER", "").strip().lower()
    if forced == "python":
        return "TIDINGS_WS_PARSER=python"
    return probe()


WHY_FALLBACK = _choose()
if WHY_FALLBACK:
    log.warning("/ws parses frames in Python (slower): %s", WHY_FALLBACK)


def make_parser(queue: Any, max_msg_size: int) -> Any:
    """The frame parser for one socket: ``feed_data(bytes)`` hands messages to ``queue``."""
    if WHY_FALLBACK:
        return FrameParser(queue, max_msg_size)
    return _Reader(queue, max_msg_size, compress=False, decode_text=True)
