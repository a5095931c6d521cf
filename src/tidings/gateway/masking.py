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
        self._skip = 0  # payload bytes of the current frame still to come

    def unmasked(self, data: bytes) -> bool:
        """Take the next bytes; True as soon as a frame without the mask bit starts."""
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            kept = len(self._head)
            head = self._head + data[pos:pos + 14 - kept]  # 14: the longest header
            if len(head) < 2:
                self._head = head
                return False
            if not head[1] & 0x80:
                return True
            length = head[1] & 0x7F
            size = 6 + (2 if length == 126 else 8 if length == 127 else 0)
            if len(head) < size:  # the read ended inside the header
                self._head = head
                return False
            self._skip = length if length < 126 else int.from_bytes(head[2:size - 4], "big")
            self._head = b""
            pos += size - kept
        return False
