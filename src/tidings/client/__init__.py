"""The Python client, under the server's name: everything of :mod:`tidings_client`.

The client is its own distribution, ``tidings-client`` (clients/python/), which the
server depends on; ``from tidings.client import Client`` keeps working for code
written before the split. New code imports :mod:`tidings_client`.
"""

from tidings_client import *  # noqa: F403
from tidings_client import __all__ as __all__
