"""The chat system of seed 001: what each client message does.

A chat's path: the gateway decodes ``MsgChat`` → :meth:`ChatService.chat`
queues it on the group-commit log → once durable, ``ChatAck`` goes to the
sender and a :class:`ChatEvent` to the bus → every node's hub pushes it to the
recipient's devices and the sender's other devices.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import defaultdict
from typing import Any

from tidings.auth.refresh import RefreshTokens
from tidings.auth.tokens import Authenticator, AuthError, Identity
from tidings.bus.base import Bus, ChatEvent, PushEvent
from tidings.cluster.base import Registry
from tidings.cluster.memory import MemoryRegistry
from tidings.cluster.replace import Replacements
from tidings.config import Settings
from tidings.gateway.connection import Connection
from tidings.hooks import Hooks, HookUnavailable
from tidings.hooks.connect import connect_identity
from tidings.hub.acks import AckWriter
from tidings.hub.hub import Hub, to_wire
from tidings.hub.presence import Presence
from tidings.metrics import Metrics
from tidings.protocol.codec import encode_frame
from tidings.protocol.codes import CloseCode, ErrorCode, MsgType
from tidings.protocol.messages import (
    AckPayload,
    AuthPayload,
    AuthResponsePayload,
    ChatAckPayload,
    ChatPayload,
    ErrorPayload,
    PresencePayload,
    ReceiptPushPayload,
    SyncRequestPayload,
    SyncResponsePayload,
)
from tidings.store.base import AppendResult, NewMessage, Receipt, Store, StoredMessage
from tidings.store.groupcommit import GroupCommitLog

log = logging.getLogger(__name__)


class ChatService:
    """Handlers for the client message types, shared by all connections of a node."""

    def __init__(self, settings: Settings, store: Store, bus: Bus, hub: Hub,
                 auth: Authenticator, metrics: Metrics, *,
                 registry: Registry | None = None) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.hub = hub
        self.auth = auth
        self.metrics = metrics
        self.registry = registry or MemoryRegistry(node_id="local", address="")
        self.presence = Presence(self.registry, store, bus)
        self.replacements = Replacements(self.registry, hub, bus)
        hub.listeners.append(self.replacements.on_event)
        self.log = GroupCommitLog(store, self._committed, observe=self._observe_commit)
        self._known_users: set[int] = set()  # users are never deleted: a safe cache
        self._ack_targets: dict[str, int] = {}  # conn id -> highest ack not yet stored
        self._confirmed: dict[str, int] = {}  # conn id -> highest id it acknowledged
        self._tasks: set[asyncio.Task[None]] = set()
        self._ack_writer = AckWriter(store)
        self.hooks = Hooks(settings)  # the application's backend (docs/integration.md)
        self.refresh = RefreshTokens(store, auth.jwt, settings.refresh_token_ttl)

    async def close(self) -> None:
        """Finish pending commits and ack writes."""
        await self.log.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.hooks.close()

    # replies

    def reply(self, conn: Connection, type_: int, seq: int, payload: object) -> None:
        """Send a reply in the connection's framing."""
        conn.reply(encode_frame(type_, seq, payload, binary=conn.binary))

    def error(self, conn: Connection, seq: int, code: ErrorCode, message: str) -> None:
        """Send ``MsgError`` with the request's seq."""
        self.metrics.errors.labels(code.value).inc()
        self.reply(conn, MsgType.ERROR, seq, ErrorPayload(code.value, message))

    # auth and the connection's life

    async def authenticate(self, conn: Connection, seq: int, payload: AuthPayload) -> bool:
        """Check the token, register the connection and replay its backlog.

        On failure answer ``MsgAuthRsp{success:false}`` and close the connection.
        """
        hooked = self.hooks.enabled("connect")  # the hook has decided the device, if any
        try:
            identity, data = await self._identify(conn, payload)
        except AuthError as exc:
            await self._refuse(conn, seq, ErrorCode.AUTH_FAILED, str(exc), CloseCode.AUTH_FAILED)
            return False
        except HookUnavailable as exc:
            await self._refuse(conn, seq, ErrorCode.BACKEND_UNAVAILABLE, str(exc),
                               CloseCode.INTERNAL_ERROR)
            return False
        limit = self.settings.max_connections_per_user
        device_id = (identity.device_id if hooked else payload.device_id) or \
            identity.device_id or uuid.uuid4().hex
        try:  # the limit counts the user's connections on every node, but this device's
            claim = await self.registry.claim(identity.user_id, conn.id, limit,
                                              device_id=device_id)
        except Exception as exc:
            log.error("%s: cluster registry unavailable: %s", conn.id, exc)
            await self._refuse(conn, seq, ErrorCode.INTERNAL_ERROR,
                               "cluster registry unavailable; retry", CloseCode.INTERNAL_ERROR)
            return False
        if not claim.granted:
            await self._refuse(conn, seq, ErrorCode.TOO_MANY_CONNECTIONS,
                               f"at most {limit} connections per user",
                               CloseCode.TOO_MANY_CONNECTIONS)
            return False
        await self.replacements.replaced(identity.user_id, claim.replaced)
        if conn.closed:  # dropped while the registry answered: give the slot back
            await self.registry.release(identity.user_id, conn.id)
            return False
        conn.user_id = identity.user_id
        conn.device_id = device_id
        conn.token_id, conn.scopes = identity.token_id, identity.scopes
        conn.credential_expires = self.credential_expiry(identity)
        self._known_users.add(conn.user_id)
        self.hub.add(conn)
        self.registry.settled(conn.id)  # the hub reports it from now on
        first = claim.live_before == 0  # the user's first connection in the cluster
        self.reply(conn, MsgType.AUTH_RSP, seq, AuthResponsePayload(
            success=True, user_id=conn.user_id, device_id=conn.device_id, data=data,
            expires_at=identity.expires_at))
        log.info("%s authenticated user %d device %s from %s", conn.id, conn.user_id,
                 conn.device_id, conn.remote)
        try:
            await self._catch_up(conn)
        except Exception:
            # Never leave a registered connection that will not get its backlog.
            log.exception("%s: backlog replay failed", conn.id)
            conn.close(CloseCode.INTERNAL_ERROR, "backlog replay failed")
            return False
        if first:
            await self.presence.went_online(conn.user_id)
        return True

    def credential_expiry(self, identity: Identity) -> int | None:
        """When a connection of ``identity`` must close without a refresh (ms), or None."""
        if identity.expires_at is None:
            return None
        return identity.expires_at + int(self.settings.jwt_leeway * 1000)

    async def _identify(self, conn: Connection, payload: AuthPayload) -> tuple[Identity, Any]:
        """The token's identity, passed through the connect hook if one is set
        (hooks/connect.py); raises AuthError or HookUnavailable to refuse."""
        hooked = self.hooks.enabled("connect")
        identity: Identity | None = None
        token_error: AuthError | None = None
        try:
            identity = await self.auth.verify(payload.token)
        except AuthError as exc:
            if not hooked:
                raise
            token_error = exc
        if not hooked and identity is not None:
            return identity, None
        return await connect_identity(self.hooks, self.store, conn.hook_request(),
                                      payload.token, payload.device_id, identity, token_error)

    async def _refuse(self, conn: Connection, seq: int, code: ErrorCode, message: str,
                      close_code: CloseCode) -> None:
        self.metrics.errors.labels(code.value).inc()
        log.info("%s auth refused: %s (%s)", conn.id, code.value, message)
        self.reply(conn, MsgType.AUTH_RSP, seq,
                   AuthResponsePayload(success=False, error=f"{code.value}: {message}"))
        await conn.drain()
        conn.close(close_code, code.value)

    async def _catch_up(self, conn: Connection) -> None:
        """Push, in pages, what this device has not confirmed; then go live.

        Always sends at least one page, so a client knows when it is up to date.
        Live pushes arriving meanwhile are buffered by the hub and de-duplicated
        by id, so nothing is missed or sent twice.
        """
        after = await self.store.get_cursor(conn.user_id, conn.device_id)
        while not conn.closed:
            page, has_more = await self._page(conn, after)
            await conn.send(encode_frame(MsgType.SYNC_RSP, 0, SyncResponsePayload(
                [to_wire(m) for m in page], has_more), binary=conn.binary))
            conn.last_seen = asyncio.get_running_loop().time()  # progress is not idleness
            if page:
                after = page[-1].id
            if not has_more:
                break
        conn.last_pushed_id = max(conn.last_pushed_id, after)
        self.hub.finish_catch_up(conn)

    async def disconnected(self, conn: Connection) -> None:
        """Forget a closed connection; announce offline if it was the user's last."""
        self._confirmed.pop(conn.id, None)
        if not conn.user_id or not self.hub.holds(conn):
            return
        self.hub.remove(conn)
        try:
            left = await self.registry.release(conn.user_id, conn.id)
        except Exception as exc:  # the next heartbeat drops the entry instead
            log.warning("%s: releasing the connection slot failed: %s", conn.id, exc)
            return
        if left == 0:  # None: replaced or reaped, its presence settled already
            await self.presence.went_offline(conn.user_id)

    # chat

    async def chat(self, conn: Connection, seq: int, payload: ChatPayload) -> None:
        """Store a chat; ``ChatAck`` (or ``MsgError``) follows once it is durable."""
        self.metrics.messages_in.inc()
        if payload.to not in self._known_users and "\x00" not in payload.content:
            if await self.store.get_user(payload.to) is None:
                self.error(conn, seq, ErrorCode.USER_NOT_FOUND, f"no user {payload.to}")
                return
            self._known_users.add(payload.to)
        self._store_chat(conn, seq, payload)

    def knows_user(self, user_id: int) -> bool:
        """True if ``user_id`` is known to exist (a chat to it needs no lookup)."""
        return user_id in self._known_users

    def chat_now(self, conn: Connection, seq: int, payload: ChatPayload) -> None:
        """:meth:`chat` without waiting, to a recipient :meth:`knows_user` says exists."""
        self.metrics.messages_in.inc()
        self._store_chat(conn, seq, payload)

    def _store_chat(self, conn: Connection, seq: int, payload: ChatPayload) -> None:
        if "\x00" in payload.content:  # PostgreSQL text cannot hold NUL: refuse it everywhere
            self.error(conn, seq, ErrorCode.INVALID_PAYLOAD, "content may not contain NUL")
            return
        message = NewMessage(conn.user_id, conn.device_id, payload.to, payload.type,
                             payload.content, seq)
        # Told by the commit task itself, right after the batch's pushes: the ack and
        # the pushes of one commit reach a connection in one write (store/groupcommit.py).
        self.log.submit(message, functools.partial(
            self._chat_stored, conn, seq, message, asyncio.get_running_loop().time()))

    def _chat_stored(self, conn: Connection, seq: int, sent: NewMessage, arrived: float,
                     result: AppendResult | None, exc: BaseException | None) -> None:
        if result is None:
            self.error(conn, seq, ErrorCode.INTERNAL_ERROR, "message not stored; send it again")
            return
        stored = result.message
        if result.duplicate and (stored.recipient_id, stored.type, stored.content) != (
                sent.recipient_id, sent.type, sent.content):
            self.error(conn, seq, ErrorCode.SEQ_CONFLICT,
                       f"seq {seq} was used by message {stored.id} with other content")
            return
        self.reply(conn, MsgType.CHAT_ACK, seq, ChatAckPayload(stored.id, stored.created_at))
        self.metrics.chat_acked(asyncio.get_running_loop().time() - arrived)

    def _observe_commit(self, size: int, seconds: float) -> None:
        self.metrics.commit_batch.observe(size)
        self.metrics.store_latency.observe(seconds)

    async def _committed(self, results: list[AppendResult]) -> None:
        self.metrics.messages_stored.inc(len(results))
        await self.bus.publish_many([ChatEvent(result.message) for result in results])

    # acks and receipts

    async def ack(self, conn: Connection, seq: int, payload: AckPayload) -> None:
        """Confirm receipt up to a message (cumulative) and, for read, mark it read."""
        if not self.ack_now(conn, seq, payload):
            return
        if payload.status == "read":
            receipt = await self.store.mark_read(conn.user_id, payload.message_id)
            if receipt is not None:
                await self._send_receipts([receipt], "read", conn.user_id)

    def ack_now(self, conn: Connection, seq: int, payload: AckPayload) -> bool:
        """The part of :meth:`ack` that never waits (all of a delivery ack's): False if
        the ack was refused."""
        if payload.message_id > conn.highest_sent_id:
            self.error(conn, seq, ErrorCode.MESSAGE_NOT_FOUND,
                       f"message {payload.message_id} was not delivered on this connection")
            return False
        self._confirm(conn, payload.message_id)
        return True

    def confirmed(self, conn: Connection) -> int:
        """The highest message id this connection acknowledged (0 if none yet)."""
        return self._confirmed.get(conn.id, 0)

    def awaits_ack(self, conn: Connection) -> bool:
        """Whether this connection's device acknowledges deliveries (it did at least
        once on this connection) and has not yet acknowledged all that was sent on it."""
        confirmed = self._confirmed.get(conn.id)
        return confirmed is not None and confirmed < conn.highest_sent_id

    async def acks_stored(self) -> None:
        """Wait until every acknowledgement taken so far is stored (a graceful drain)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _confirm(self, conn: Connection, up_to: int) -> None:
        # The cursor write runs beside the read loop. Acks arriving while one is
        # being stored fold into the next write: under load a device's cursor
        # costs one write per burst, not one per message.
        if not conn.closed:
            self._confirmed[conn.id] = max(self._confirmed.get(conn.id, 0), up_to)
        pending = self._ack_targets.get(conn.id)
        self._ack_targets[conn.id] = max(pending or 0, up_to)
        if pending is None:
            task = asyncio.get_running_loop().create_task(self._store_acks(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _store_acks(self, conn: Connection) -> None:
        try:
            while target := self._ack_targets.get(conn.id, 0):
                self._ack_targets[conn.id] = 0
                # Stored with other connections' acks (one transaction: see hub/acks.py).
                receipts = await self._ack_writer.store(conn.user_id, conn.device_id, target)
                await self._send_receipts(receipts, "delivered", conn.user_id)
        except Exception:
            log.exception("%s: storing ack failed", conn.id)
        finally:
            self._ack_targets.pop(conn.id, None)

    async def _send_receipts(self, receipts: list[Receipt], status: str, by: int) -> None:
        by_sender: dict[int, list[int]] = defaultdict(list)
        for r in receipts:
            by_sender[r.sender_id].append(r.message_id)
        for sender, ids in by_sender.items():
            payload = ReceiptPushPayload(ids, status, by)
            await self.bus.publish(PushEvent([sender], MsgType.RECEIPT_PUSH,
                                             {"message_ids": payload.message_ids,
                                              "status": status, "by": by}))

    # sync, presence, ping

    async def sync(self, conn: Connection, seq: int, payload: SyncRequestPayload) -> None:
        """Answer one page after ``last_message_id``; the client has all before it."""
        # A read-only page: the live stream position (last_pushed_id) is untouched,
        # so live pushes go on in order beside it.
        after = payload.last_message_id
        if 0 < after <= conn.highest_sent_id:
            self._confirm(conn, after)
        page, has_more = await self._page(conn, after)
        if page:
            conn.synced_id = max(conn.synced_id, page[-1].id)
        await conn.send(encode_frame(MsgType.SYNC_RSP, seq, SyncResponsePayload(
            [to_wire(m) for m in page], has_more), binary=conn.binary))

    async def _page(self, conn: Connection, after: int) -> tuple[list[StoredMessage], bool]:
        """One sync page: at most sync_page_size messages, and no bigger than a frame
        may be (clients enforce the same limit we do), but never empty if any remain."""
        size = self.settings.sync_page_size
        rows = await self.store.messages_for_device(conn.user_id, conn.device_id, after, size)
        budget = self.settings.max_frame_bytes - 1024  # room for the envelope
        for n, m in enumerate(rows):
            budget -= len(m.content.encode()) + 128  # + the other fields, generously
            if budget < 0 and n > 0:
                return rows[:n], True
        return rows, len(rows) == size

    async def set_presence(self, conn: Connection, seq: int, payload: PresencePayload) -> None:
        """The user chose a status."""
        await self.presence.set(conn.user_id, payload.status)

    def ping(self, conn: Connection, seq: int) -> None:
        """``MsgPong`` at once, same seq."""
        self.reply(conn, MsgType.PONG, seq, None)
