"""A stand-in for the gateway's socket, for unit tests of what sits above it."""

from __future__ import annotations


class RecordingSocket:
    """Takes every write at once and records the frames (gateway.connection.Socket)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def send(self, data: bytes, binary: bool) -> None:
        self.frames.append(data)

    def write_now(self, frames: list[tuple[bytes, bool]]) -> bool:
        self.frames += [data for data, _ in frames]
        return True

    async def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass
