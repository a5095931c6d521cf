"""Ledger traffic: SDK clients that chat with each other and write down everything.

Each device is a :class:`tidings.client.Client` (it reconnects, re-sends and
de-duplicates by itself) whose socket goes through :class:`RecordingConnector`,
which writes every chat message the server puts on the wire into the ledger
before the SDK sees it. A sender loop per device sends one chat at a time to a
random peer and records its ``ChatAck`` (or refusal); a reader task records
what the SDK yields.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import aiohttp

from tests.chaos.ledger import Ledger
from tidings.auth import Authenticator
from tidings.client import (
    AiohttpTransport,
    ChatMessage,
    Client,
    ClientClosedError,
    ConnectionLostError,
    Disconnected,
    Reconnected,
    ReconnectPolicy,
    TidingsError,
    Transport,
)
from tidings.config import Settings
from tidings.protocol.codec import decode_server_frame
from tidings.protocol.codes import MsgType
from tidings.store import open_store

FAST_RECONNECT = ReconnectPolicy(initial_interval=0.2, max_interval=2.0, jitter=0.5)


class RecordingConnector:
    """Opens the SDK's own transport and records the chat messages it carries.

    With ``nodes`` (the ``/ws`` URLs of a cluster) it ignores the client's URL: it
    starts on one node and moves to the next one each time a connect fails, as a
    client behind a load balancer would reconnect elsewhere.
    """

    def __init__(self, ledger: Ledger, device: str, nodes: list[str] | None = None,
                 first: int = 0,
                 placements: list[tuple[str, str]] | None = None,
                 synced: list[tuple[str, float]] | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.ledger = ledger
        self.session = session  # shared by many devices: no session per connect
        self.device = device
        self.nodes = nodes or []
        self._next = first
        # (device, URL) of every connection opened, in order: where each device was.
        self.placements = placements if placements is not None else []
        self.synced = synced  # (device, monotonic) when a connection's backlog is done

    async def __call__(self, url: str) -> Transport:
        if self.nodes:
            url = self.nodes[self._next % len(self.nodes)]
        try:
            inner = await AiohttpTransport.connect(url, session=self.session)
        except BaseException:
            self._next += 1
            raise
        self.ledger.connected(self.device)
        self.placements.append((self.device, url))
        return _Recording(inner, self.ledger, self.device, self.synced)


class _Recording:
    def __init__(self, inner: Transport, ledger: Ledger, device: str,
                 synced: list[tuple[str, float]] | None) -> None:
        self._inner, self._ledger, self._device = inner, ledger, device
        self._synced = synced

    async def send(self, data: bytes | str) -> None:
        await self._inner.send(data)

    async def recv(self) -> bytes | str:
        data = await self._inner.recv()
        type_, seq, body = decode_server_frame(data)
        if type_ == MsgType.CHAT_PUSH:
            self._ledger.on_wire(self._device, body)
        elif type_ == MsgType.SYNC_RSP and seq == 0:  # a backlog page: part of the stream
            for message in body.get("messages", []):
                self._ledger.on_wire(self._device, message)
            if not body.get("has_more") and self._synced is not None:
                self._synced.append((self._device, time.monotonic()))  # resynced
        return data

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._inner.close(code, reason)


@dataclass
class Account:
    """A user and a token for it."""

    user_id: int
    token: str


async def create_accounts(database_url: str, count: int) -> list[Account]:
    """Users and tokens written straight to the store (no argon2: fast for thousands)."""
    store = open_store(database_url)
    try:
        await store.migrate()
        auth = Authenticator(store, Settings(database_url=database_url))
        accounts = []
        for _ in range(count):
            user = await store.create_user(f"ledger{random.getrandbits(48):x}", "!no-password")
            token, _ = await auth.issue(user.id)
            accounts.append(Account(user.id, token))
        return accounts
    finally:
        await store.close()


@dataclass
class Traffic:
    """Devices chatting through a node; ``run`` sends until ``stop`` is set."""

    url: str
    ledger: Ledger
    nodes: list[str] = field(default_factory=list)  # a cluster: devices spread over these
    pause: float = 0.02  # between one device's chats
    ping_interval: float = 5.0  # the SDK's keep-alive (its default is 30 s)
    clients: dict[str, Client] = field(default_factory=dict)
    disconnects: list[tuple[str, int, str]] = field(default_factory=list)  # device, code, why
    reconnects: list[tuple[str, float]] = field(default_factory=list)  # device, monotonic
    placements: list[tuple[str, str]] = field(default_factory=list)  # device, URL per connect
    synced: list[tuple[str, float]] = field(default_factory=list)  # backlog done: device, when
    session: aiohttp.ClientSession | None = None  # for every device's connects (None: own)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _senders: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self, accounts: list[Account], devices_per_user: int = 1,
                      policy: ReconnectPolicy = FAST_RECONNECT,
                      concurrency: int = 50, retries: int = 3) -> None:
        """Open every device (``concurrency`` connects at a time) and start its reader.
        A first connect that cannot reach the node (a loaded machine: thousands of
        clients connecting) is tried again up to ``retries`` times."""
        gate = asyncio.Semaphore(concurrency)

        async def open_one(account: Account, n: int) -> None:
            name = f"u{account.user_id}d{n}"
            self.ledger.add_device(name, account.user_id)
            connector = RecordingConnector(self.ledger, name, self.nodes,
                                           first=account.user_id + n,
                                           placements=self.placements, synced=self.synced,
                                           session=self.session)
            client = Client(self.url, account.token, device_id=name, reconnect=policy,
                            ping_interval=self.ping_interval, ping_timeout=5.0,
                            connector=connector)
            for attempt in range(retries + 1):
                try:
                    async with gate:
                        await client.connect()
                    break
                except ConnectionLostError:
                    if attempt == retries:
                        raise
                    await asyncio.sleep(1.0 + attempt)
            self.clients[name] = client
            self._tasks.append(asyncio.create_task(self._read(name, client)))

        await asyncio.gather(*(open_one(a, n) for a in accounts
                               for n in range(devices_per_user)))

    def nodes_of(self, device: str) -> list[str]:
        """The URLs this device was connected to, in order (one per connection)."""
        return [url for d, url in self.placements if d == device]

    def start_sending(self, peers: list[int], senders: list[str] | None = None,
                      limit: int | None = None) -> None:
        """Start a sender loop on each device in ``senders`` (default: all)."""
        for name in senders or list(self.clients):
            self._senders.append(asyncio.create_task(self._send(name, peers, limit)))

    async def finish_sending(self, timeout: float = 60.0) -> None:
        """Stop the senders and wait for their last chats to be answered."""
        self.stop.set()
        async with asyncio.timeout(timeout):
            await asyncio.gather(*self._senders)

    async def settle(self, timeout: float = 30.0) -> float:
        """Wait until every device got every acknowledged message; return seconds taken."""
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.ledger.missing():
                    await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def close(self) -> None:
        """Close every client and stop every task."""
        self.stop.set()
        await asyncio.gather(*(c.close() for c in self.clients.values()),
                             return_exceptions=True)
        for task in self._tasks + self._senders:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._senders, return_exceptions=True)

    async def _send(self, name: str, peers: list[int], limit: int | None) -> None:
        client = self.clients[name]
        rng = random.Random(name)
        count = 0
        # A limited sender sends all its chats; an unlimited one runs until stop is set.
        while count < limit if limit is not None else not self.stop.is_set():
            count += 1
            to = rng.choice(peers)  # not a list of the others: 10 000 devices, 10 000 peers
            while to == client.user_id and len(peers) > 1:
                to = rng.choice(peers)
            sent = self.ledger.send(name, to)
            try:
                ack = await client.send_chat(sent.to, sent.content)
            except ClientClosedError:
                return
            except TidingsError as exc:  # e.g. WS_INTERNAL_ERROR while the database is down
                sent.refused = exc.code
                await asyncio.sleep(0.1)
                continue
            sent.message_id = ack.message_id
            await asyncio.sleep(self.pause)

    async def _read(self, name: str, client: Client) -> None:
        async for event in client.events():
            if isinstance(event, ChatMessage):
                self.ledger.on_event(name, event.message_id, event.from_, event.to,
                                     event.content)
            elif isinstance(event, Disconnected):
                self.disconnects.append((name, event.code, event.reason))
            elif isinstance(event, Reconnected):
                self.reconnects.append((name, time.monotonic()))
