"""What reading one ``/ws`` connection takes, kept while its socket is parked."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tidings.gateway.caps import Lease
from tidings.gateway.connection import CURRENT, Connection
from tidings.gateway.wire import WsPeer
from tidings.logs import REQUEST_ID
from tidings.protocol.codec import Frame, ProtocolError, decode_payload
from tidings.protocol.codes import MsgType
from tidings.protocol.messages import AckPayload, Payload
from tidings.protocol.ratelimit import TokenBucket

if TYPE_CHECKING:
    from tidings.gateway.websocket import Gateway

log = logging.getLogger("tidings.gateway.websocket")  # the gateway's records, one logger


class Reading:
    """What reading one connection takes: its socket, its slot, its rate limit and the
    request id of its upgrade. One slotted object per connection, parked again each
    time the socket goes idle: two ``functools.partial`` callbacks (each with a bound
    method, an argument tuple and a keyword dict) cost ~540 bytes of an idle
    connection's ~4 KiB (issue 19), and a new one was made at every re-park."""

    __slots__ = ("bucket", "conn", "decoded", "gateway", "lease", "peer", "request_id")

    def __init__(self, gateway: Gateway, peer: WsPeer, conn: Connection, lease: Lease,
                 bucket: TokenBucket, request_id: str) -> None:
        self.gateway = gateway
        self.peer = peer
        self.conn = conn
        self.lease = lease
        self.bucket = bucket
        self.request_id = request_id
        # The next message's data, frame and payload (None: not decoded), if the fast
        # path decoded it and left it for the reader task.
        self.decoded: tuple[Any, Frame, Payload | None] | None = None

    def __call__(self) -> None:
        """Something arrived on the idle socket (:meth:`WsPeer.park`'s callback)."""
        self.gateway.resume(self)

    def gone(self) -> None:
        """The client left while its reader was busy (:attr:`WsPeer.on_gone`)."""
        self.gateway.peer_gone(self.conn)

    def log_failure(self, what: str) -> None:
        """Log the exception being handled, with this connection's context: outside the
        reader task (the fast path runs in the socket's callback) it is not set."""
        conn_token = CURRENT.set(self.conn)
        request_token = REQUEST_ID.set(self.request_id)
        try:
            log.exception("%s: %s", self.conn.id, what)
        finally:
            REQUEST_ID.reset(request_token)
            CURRENT.reset(conn_token)


def ack_of(conn: Connection, frame: Frame) -> AckPayload | None:
    """The payload of an authenticated connection's delivery ack, or None (any other frame,
    or one that does not decode: dispatching it decodes it again and answers the error)."""
    if frame.type != MsgType.ACK or not conn.user_id:
        return None
    try:
        payload = decode_payload(frame)
    except ProtocolError:
        return None
    return payload if isinstance(payload, AckPayload) else None
