"""The editing socket (``/api/v1/ws/editing/{session_id}``) as the AsyncAPI document
shows it: every event type of :class:`EditingEventType` with the data its sender
builds (service.py, sockets.py)."""

from __future__ import annotations

from typing import Literal

import msgspec

from tidings.api.asyncapi import Sender, Socket, WsMessage
from tidings.apps.editing.openapi import EditorView, TakeoverView
from tidings.protocol.codes import EditingEventType as Ev


class Connected(msgspec.Struct):
    """The first frame: the session's state, so a reconnecting client misses nothing."""

    session_id: str
    workspace_id: int
    resource_id: int
    user_id: int
    editing: bool
    editor: EditorView | None
    pending_requests: list[TakeoverView]
    my_requests: list[TakeoverView]


class RequestEvent(msgspec.Struct):
    """A takeover request (``takeover_request``, ``takeover_expired``)."""

    request: TakeoverView


class ResponseEvent(msgspec.Struct):
    """The editor's answer; ``editor`` is the new editor when approved."""

    request: TakeoverView
    approved: bool
    editor: EditorView | None


class EndedEvent(msgspec.Struct):
    """The editing period of ``session_id`` ended; ``editor`` is who edits now."""

    workspace_id: int
    resource_id: int
    session_id: str
    user_id: int
    reason: Literal["taken_over", "ended", "timed_out"]
    editor: EditorView | None


class Empty(msgspec.Struct):
    """No fields."""


class ErrorEvent(msgspec.Struct):
    """A client frame was refused."""

    code: Literal["BAD_FRAME", "UNKNOWN_TYPE"]  # EditingErrorCode
    message: str


_C: Sender = "client"
_S: Sender = "server"
EDITING_SOCKET = Socket(
    "editing", "/api/v1/ws/editing/{session_id}", "Editing session socket (seed 002)",
    "JSON text frames `{type, data}`. Authenticate with `Authorization: Bearer` or "
    "`?token=`; the session must be yours (else 404 before the upgrade). While a socket "
    "is open the session stays alive. A socket that stops reading is closed with 4413.",
    (WsMessage("ping", "ping", _C, None, "Keep the session alive", ("pong",)),
     WsMessage(Ev.CONNECTED.value, "connected", _S, Connected, "The session's state"),
     WsMessage(Ev.TAKEOVER_REQUEST.value, "takeover_request", _S, RequestEvent,
               "To the editor: someone asks for the lock"),
     WsMessage(Ev.TAKEOVER_RESPONSE.value, "takeover_response", _S, ResponseEvent,
               "To both sides: approved or rejected"),
     WsMessage(Ev.TAKEOVER_EXPIRED.value, "takeover_expired", _S, RequestEvent,
               "To both sides: nobody answered in time"),
     WsMessage(Ev.EDITING_ENDED.value, "editing_ended", _S, EndedEvent,
               "To every session of the resource: the editor changed or left"),
     WsMessage(Ev.PONG.value, "pong", _S, Empty, "Answer to ping"),
     WsMessage(Ev.ERROR.value, "error", _S, ErrorEvent, "A client frame was refused")),
    "event", parameters={"session_id": "the session from POST …/editing/start (es_…)"},
    extensions={"x-tidings-close-codes": [
        {"code": 4413, "name": "SLOW_CONSUMER", "meaning": "the socket stopped reading"},
        {"code": 4402, "name": "TOKEN_EXPIRED",
         "meaning": "the token expired: reconnect with a new one"}]})
