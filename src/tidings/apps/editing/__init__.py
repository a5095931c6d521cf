"""Collaborative editing with takeover requests (seed 002): see docs/editing.md."""
