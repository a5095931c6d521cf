"""The MASK bit of every client frame (RFC 6455 §5.1: a server MUST fail the connection
on a frame that is not masked).

aiohttp's reader unmasks masked frames and takes unmasked ones as they are, without
saying which it saw, so the gateway follows the frame boundaries itself: a header's
first two bytes (the mask bit and a length), the extended length, the key, then the
payload skipped without being looked at. Everything else in a frame is the reader's.
"""

from __future__ import annotations


class MaskBitCheck:
    """Frame boundaries of one client's byte stream, fed as it arrives."""

    __slots__ = ("_head", "_skip")

    def __init__(self) -> None:
        self._head = b""  # the start of a header cut off by the end of a read
        self._skip = 0  # bytes of the current frame (its key, its payload) still to come

    def unmasked(self, data: bytes) -> bool:
        """Take the next bytes; True as soon as a frame without the mask bit starts."""
        # Runs on every read of every client: one step per frame, reading the header
        # where it lies, and a copy only for a header cut by the end of a read (rare).
        if self._head:
            data, self._head = self._head + data, b""
        pos, end = self._skip, len(data)
        while pos + 1 < end:
            second = data[pos + 1]
            if not second & 0x80:
                return True
            length = second & 0x7F
            if length < 126:
                pos += 6 + length  # header, key, payload
                continue
            size = 4 if length == 126 else 10  # up to the end of the extended length
            if pos + size > end:
                break  # the read ended inside the length: keep the header's start
            pos += size + 4 + int.from_bytes(data[pos + 2:pos + size], "big")
        if pos >= end:
            self._skip = pos - end
        else:  # one byte, or a header's start up to its extended length, is left
            self._head, self._skip = data[pos:], 0
        return False
