"""Tidings: a real-time messaging server."""

__version__ = "0.2.0"
"""The version of Tidings: the one place it is written (pyproject.toml reads it)."""
