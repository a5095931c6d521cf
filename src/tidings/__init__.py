"""Tidings: a real-time messaging server."""

__version__ = "0.1.0"
