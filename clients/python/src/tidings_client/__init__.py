"""The Python client of Tidings: the ``/ws`` protocol (:class:`Client`, async), the HTTP
API (:class:`HttpClient`, async) and both with blocking calls for scripts
(:class:`SyncClient`). Nothing of the server: this distribution, ``tidings-client``,
needs only aiohttp and msgspec, and owns the wire protocol (:mod:`tidings_client.protocol`)
that the server imports.

::

    from tidings_client import ChatMessage, Client

    async with Client("ws://localhost:8443/ws", token) as client:
        ack = await client.send_chat(to=42, content="hello")
        async for event in client.events():
            if isinstance(event, ChatMessage):
                print(event.from_, event.content)

The client reconnects by itself (see :class:`ReconnectPolicy`), re-sends chats
still waiting for their ``ChatAck``, and yields every chat message exactly once.
"""

from tidings_client._client import Client
from tidings_client._errors import (
    AuthError,
    ClientClosedError,
    ConnectionLostError,
    HttpError,
    TidingsError,
)
from tidings_client._events import (
    ChannelPresence,
    ChatAck,
    ChatMessage,
    Disconnected,
    Event,
    PresenceChange,
    Publication,
    PublishAck,
    Receipt,
    Reconnected,
    Subscribed,
)
from tidings_client._reconnect import ReconnectPolicy
from tidings_client._transport import AiohttpTransport, Connector, Transport, TransportClosed
from tidings_client.http import HttpClient
from tidings_client.sync import SyncClient

__version__ = "0.1.0"

__all__ = [
    "AiohttpTransport",
    "AuthError",
    "ChannelPresence",
    "ChatAck",
    "ChatMessage",
    "Client",
    "ClientClosedError",
    "ConnectionLostError",
    "Connector",
    "Disconnected",
    "Event",
    "HttpClient",
    "HttpError",
    "PresenceChange",
    "Publication",
    "PublishAck",
    "Receipt",
    "ReconnectPolicy",
    "Reconnected",
    "Subscribed",
    "SyncClient",
    "TidingsError",
    "Transport",
    "TransportClosed",
]
