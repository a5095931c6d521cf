"""``Rpc`` (13): a client's call to the application's backend, answered by ``RpcRsp``.

The frame's ``method`` and ``data`` go to the ``rpc`` hook with who is calling; the
hook's ``result.data`` comes back in ``RpcRsp`` with the frame's ``seq``. A refusal is
``WS_REFUSED_BY_BACKEND`` with the backend's message; no hook, a timeout or a failing
backend is ``WS_BACKEND_UNAVAILABLE``. Calls run beside the read loop, so a slow backend
delays only its own answers, not the connection's other frames.
"""

from __future__ import annotations

import asyncio
import logging

from tidings.gateway.connection import Connection
from tidings.hooks import HookRefused, HookUnavailable
from tidings.hub.chat import ChatService
from tidings.protocol.codes import ErrorCode, MsgType
from tidings.protocol.messages import RpcPayload, RpcResponsePayload

log = logging.getLogger(__name__)

MAX_CALLS_IN_FLIGHT = 16
"""Rpc calls one connection may have waiting for the backend; more are refused."""


class RpcCalls:
    """Forwards ``Rpc`` frames to the ``rpc`` hook."""

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}

    async def ws_rpc(self, conn: Connection, seq: int, payload: RpcPayload) -> None:
        """Start the call; ``RpcRsp`` or ``MsgError`` follows when the backend answers."""
        svc = self.service
        if not svc.hooks.enabled("rpc"):
            svc.error(conn, seq, ErrorCode.BACKEND_UNAVAILABLE,
                      "no rpc backend is configured (proxy_rpc_url)")
            return
        running = self._tasks.setdefault(conn.id, set())
        if len(running) >= MAX_CALLS_IN_FLIGHT:
            svc.error(conn, seq, ErrorCode.RATE_LIMITED,
                      f"at most {MAX_CALLS_IN_FLIGHT} rpc calls may wait at once")
            return
        task = asyncio.get_running_loop().create_task(self._call(conn, seq, payload))
        running.add(task)
        task.add_done_callback(running.discard)

    async def _call(self, conn: Connection, seq: int, payload: RpcPayload) -> None:
        svc = self.service
        request = {**conn.hook_request(), "method": payload.method, "data": payload.data}
        try:
            result = await svc.hooks.call("rpc", request) or {}
        except HookRefused as exc:
            svc.error(conn, seq, ErrorCode.REFUSED_BY_BACKEND, exc.message)
            return
        except HookUnavailable as exc:
            svc.error(conn, seq, ErrorCode.BACKEND_UNAVAILABLE, str(exc))
            return
        svc.reply(conn, MsgType.RPC_RSP, seq,
                  RpcResponsePayload(payload.method, result.get("data")))

    async def disconnected(self, conn: Connection) -> None:
        """Cancel the calls of a closed connection."""
        for task in self._tasks.pop(conn.id, set()):
            task.cancel()

    async def close(self) -> None:
        """Cancel every call still waiting."""
        for conn_id in list(self._tasks):
            for task in self._tasks.pop(conn_id):
                task.cancel()
