"""Re-export of :mod:`tidings_client.protocol.codec` (its one source) under the server's name."""

from tidings_client.protocol.codec import *  # noqa: F403
