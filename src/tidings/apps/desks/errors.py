"""The refusal every desk and organisation operation raises (routes turn it into
the core's JSON error)."""

from __future__ import annotations


class DeskError(Exception):
    """A refused desk operation: an HTTP status, an error code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
