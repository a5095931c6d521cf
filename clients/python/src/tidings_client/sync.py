"""A blocking client for scripts: the HTTP API and the ``/ws`` client without asyncio.

::

    from tidings_client import SyncClient

    with SyncClient("http://127.0.0.1:8443") as tidings:
        tidings.login("alice", "correct horse")
        tidings.connect(device_id="script")
        tidings.send_chat(2, "hello")
        for event in tidings.events(timeout=5):
            print(event)

Each :class:`SyncClient` runs its own event loop in a daemon thread; every method
runs the matching :class:`~tidings_client.HttpClient` or
:class:`~tidings_client.Client` coroutine there and waits for its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from tidings_client._client import Client
from tidings_client._errors import ClientClosedError
from tidings_client._events import ChatAck, ChatMessage, Event, PublishAck, Subscribed
from tidings_client.http import HttpClient
from tidings_client.http_types import LoggedIn
from tidings_client.protocol.messages import ChatType, PresenceStatus

P = ParamSpec("P")
T = TypeVar("T")


def ws_url(base_url: str) -> str:
    """The ``/ws`` URL of a server whose HTTP root is ``base_url``."""
    root = base_url.rstrip("/")
    if root.startswith("https://"):
        return "wss://" + root.removeprefix("https://") + "/ws"
    return "ws://" + root.removeprefix("http://") + "/ws"


def _http(method: Callable[Concatenate[HttpClient, P], Coroutine[Any, Any, T]],
          ) -> Callable[Concatenate[SyncClient, P], T]:
    """The blocking twin of an :class:`HttpClient` method."""

    def call(self: SyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self.http, *args, **kwargs))

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class SyncClient:
    """The HTTP API and the ``/ws`` client of one server, with blocking calls.

    ``base_url`` is the server's root (``http://host:port``). HTTP methods work at once
    (:meth:`login` keeps the token); :meth:`connect` then opens the ``/ws`` connection
    with that token. ``timeout`` bounds every call, in seconds. Errors are those of the
    async clients (:class:`~tidings_client.TidingsError` and its subclasses).
    """

    def __init__(self, base_url: str, token: str | None = None, *,
                 timeout: float = 30.0) -> None:
        """Start the event loop thread; nothing is connected yet."""
        self.base_url = base_url
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="tidings-client")
        self._thread.start()
        self.http = HttpClient(base_url, token, timeout=timeout)
        self.client: Client | None = None
        self._stream: AsyncIterator[Event] | None = None
        self._next: concurrent.futures.Future[Event | None] | None = None

    def __enter__(self) -> SyncClient:
        """Nothing more to open."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close; see :meth:`close`."""
        self.close()

    @property
    def token(self) -> str | None:
        """The token of the HTTP calls and of :meth:`connect`."""
        return self.http.token

    def close(self) -> None:
        """Close the ``/ws`` client and the HTTP session, and stop the loop thread."""
        if self._loop.is_closed():
            return
        try:
            if self.client is not None:
                self._run(self.client.close())
            self._run(self.http.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.timeout)
            self._loop.close()

    # HTTP API (see HttpClient)

    register = _http(HttpClient.register)
    history = _http(HttpClient.history)
    presence = _http(HttpClient.presence)
    publish_http = _http(HttpClient.publish)
    publish_to_users = _http(HttpClient.publish_to_users)
    channel_history = _http(HttpClient.channel_history)
    channel_presence = _http(HttpClient.channel_presence)
    create_token = _http(HttpClient.create_token)
    tokens = _http(HttpClient.tokens)
    current_token = _http(HttpClient.current_token)
    get_token = _http(HttpClient.get_token)
    update_token = _http(HttpClient.update_token)
    revoke_token = _http(HttpClient.revoke_token)
    revoke_tokens = _http(HttpClient.revoke_tokens)

    def login(self, username: str, password: str, device_id: str | None = None) -> LoggedIn:
        """Log in (see :meth:`HttpClient.login`); the token is kept for later calls."""
        return self._run(self.http.login(username, password, device_id))

    # /ws (see Client)

    def connect(self, device_id: str | None = None, **options: Any) -> None:
        """Open the ``/ws`` connection with the current token (``options``: those of
        :class:`~tidings_client.Client`, e.g. ``binary=False``)."""
        if self.client is not None:
            return
        if self.token is None:
            raise ClientClosedError("no token: log in first, or pass token=")
        client = Client(ws_url(self.base_url), self.token, device_id=device_id, **options)
        self._run(client.connect())
        self.client = client
        self._stream = client.events()

    def send_chat(self, to: int, content: str, type: ChatType = "text") -> ChatAck:
        """Send a chat; returns once the server stored it."""
        return self._run(self._ws().send_chat(to, content, type))

    def sync(self, last_message_id: int = 0) -> tuple[list[ChatMessage], bool]:
        """One page of this device's messages after ``last_message_id``."""
        return self._run(self._ws().sync(last_message_id))

    def ack(self, message_id: int, status: Literal["delivered", "read"] = "delivered") -> None:
        """Acknowledge a message (delivered, or read)."""
        self._run(self._ws().ack(message_id, status))

    def set_presence(self, status: PresenceStatus) -> None:
        """Set this user's presence."""
        self._run(self._ws().set_presence(status))

    def subscribe(self, channel: str, since: int | None = None) -> Subscribed:
        """Subscribe to a channel; its publications come from :meth:`events`."""
        return self._run(self._ws().subscribe(channel, since))

    def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``."""
        self._run(self._ws().unsubscribe(channel))

    def publish(self, channel: str, data: Any, *, type: str = "message",
                idempotency_key: str | None = None) -> PublishAck:
        """Publish over ``/ws``; returns once stored (before :meth:`connect`: over HTTP,
        see :meth:`publish_http`)."""
        return self._run(self._ws().publish(channel, data, type=type,
                                            idempotency_key=idempotency_key))

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (None: the client's
        ``timeout``); None once the client has stopped. Raise ``TimeoutError``
        when nothing came in time (the event still comes on the next call)."""
        self._ws()
        assert self._stream is not None
        if self._next is None:
            self._next = asyncio.run_coroutine_threadsafe(_anext(self._stream), self._loop)
        event = self._next.result(self.timeout if timeout is None else timeout)
        self._next = None
        return event

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they come until none came for ``timeout`` seconds (then stop,
        without error) or the client stopped."""
        while True:
            try:
                event = self.next_event(timeout)
            except TimeoutError:
                return
            if event is None:
                return
            yield event

    def _ws(self) -> Client:
        if self.client is None:
            raise ClientClosedError("not connected: call connect() first")
        return self.client

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise ClientClosedError()
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout)
        except TimeoutError:
            future.cancel()
            raise


async def _anext(stream: AsyncIterator[Event]) -> Event | None:
    return await anext(stream, None)
