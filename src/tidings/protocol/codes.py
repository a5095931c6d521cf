"""Re-export of :mod:`tidings_client.protocol.codes` (its one source) under the server's name."""

from tidings_client.protocol.codes import *  # noqa: F403
