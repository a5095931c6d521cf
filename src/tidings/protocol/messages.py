"""Re-export of :mod:`tidings_client.protocol.messages` (its one source) under the server's name."""

from tidings_client.protocol.messages import *  # noqa: F403
