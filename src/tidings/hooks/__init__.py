"""Backend hooks: proxies of client events to the application (see README.md)."""

from tidings.hooks.backend import HookRefused, Hooks, HookUnavailable

__all__ = ["HookRefused", "HookUnavailable", "Hooks"]
