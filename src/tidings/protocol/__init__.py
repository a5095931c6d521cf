"""The native wire protocol, sans I/O.

``codes``, ``messages`` and ``codec`` are owned by the client distribution
(:mod:`tidings_client.protocol`, one source of truth); these modules re-export it
under the server's name. ``ratelimit`` is the server's own.
"""
