"""The async Python client SDK for Tidings.

::

    from tidings.client import ChatMessage, Client

    async with Client("ws://localhost:8443/ws", token) as client:
        ack = await client.send_chat(to=42, content="hello")
        async for event in client.events():
            if isinstance(event, ChatMessage):
                print(event.from_, event.content)

The client reconnects by itself (see :class:`ReconnectPolicy`), re-sends chats
still waiting for their ``ChatAck``, and yields every chat message exactly once.
"""

from tidings.client._client import Client
from tidings.client._errors import AuthError, ClientClosedError, ConnectionLostError, TidingsError
from tidings.client._events import (
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
from tidings.client._reconnect import ReconnectPolicy
from tidings.client._transport import AiohttpTransport, Connector, Transport, TransportClosed

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
    "PresenceChange",
    "Publication",
    "PublishAck",
    "Receipt",
    "ReconnectPolicy",
    "Reconnected",
    "Subscribed",
    "TidingsError",
    "Transport",
    "TransportClosed",
]
