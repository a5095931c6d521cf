"""The broker's refusal: a wire error code and the HTTP status it maps to."""

from __future__ import annotations

from tidings.protocol.codes import ErrorCode


class BrokerError(Exception):
    """A refused channel operation: a wire error code and the HTTP status it maps to."""

    def __init__(self, code: ErrorCode, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
