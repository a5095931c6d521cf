"""Errors the client raises. Every one is a :class:`TidingsError` with a ``code``."""

from __future__ import annotations

from tidings_client.protocol.codes import ErrorCode


class TidingsError(Exception):
    """An error with a machine-readable ``code`` and a human-readable ``message``.

    Raised as is for a ``MsgError`` the server sent in answer to a request; the
    ``code`` is then one of :class:`~tidings_client.protocol.codes.ErrorCode`.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AuthError(TidingsError):
    """The server refused the token (``MsgAuthRsp`` failure or close code 4401).

    Terminal: the client does not reconnect with the same token.
    """

    def __init__(self, message: str = "authentication failed") -> None:
        super().__init__(ErrorCode.AUTH_FAILED, message)


class ConnectionLostError(TidingsError):
    """No connection could be made, or it dropped while a call needed it."""

    def __init__(self, message: str) -> None:
        super().__init__("CONNECTION_LOST", message)


class ClientClosedError(TidingsError):
    """The client is not open: never connected, closed, or stopped for good."""

    def __init__(self, message: str = "client is closed") -> None:
        super().__init__("CLIENT_CLOSED", message)


class HttpError(TidingsError):
    """The HTTP API answered an error: its ``status`` and the body's ``code`` and
    ``message`` (``{"error": {"code", "message"}}``; ``HTTP_<status>`` when the body
    is not one, e.g. from a proxy in front)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status
