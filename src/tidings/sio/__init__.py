"""Engine.IO 4 and Socket.IO 5, the server side, as ``socket.io-client`` 4 speaks them.

``packets.py`` is the wire (sans-I/O), ``session.py`` one Engine.IO session over
long-polling or WebSocket, ``server.py`` the endpoint, its namespace ``/``, rooms and
the room emit. It replaced python-socketio (docs/benchmarks.md, "Socket.IO"): that
library sends a room event through an asyncio task, a queue and a writer task per
recipient, and frames it once per recipient; here an event is encoded once per room
and written once per socket per loop turn, as ``/ws`` does (gateway/connection.py).
"""
