"""Webhooks with at-least-once delivery (see README.md)."""
