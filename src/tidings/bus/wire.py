"""How events travel between nodes: one envelope around any member of the
:data:`~tidings.bus.base.Event` union, encoded by msgspec as a tagged union.

The envelope names the publishing node, numbers its events (so two identical
events are never merged, which PostgreSQL does with equal NOTIFY payloads in one
transaction) and stamps the publish time, from which the receiver measures bus
latency. Nodes of one cluster run the same version, so no versioning is needed
beyond msgspec refusing what it cannot decode.
"""

from __future__ import annotations

import time

import msgspec

from tidings.bus.base import Event


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """One event on the wire."""

    node: str
    seq: int
    sent_at: float  # time.time() at publish
    event: Event


class EventCodec:
    """Encodes envelopes to MessagePack or JSON, and back."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._seq = 0
        self._msgpack_encoder = msgspec.msgpack.Encoder()
        self._msgpack_decoder = msgspec.msgpack.Decoder(Envelope)
        self._json_encoder = msgspec.json.Encoder()
        self._json_decoder = msgspec.json.Decoder(Envelope)

    def wrap(self, event: Event) -> Envelope:
        """Put an event in a new envelope from this node."""
        self._seq += 1
        return Envelope(self.node, self._seq, time.time(), event)

    def to_msgpack(self, envelope: Envelope) -> bytes:
        """Binary form (the Redis bus)."""
        return self._msgpack_encoder.encode(envelope)

    def from_msgpack(self, data: bytes) -> Envelope:
        """Decode; raise ``msgspec.DecodeError`` (or ValidationError) if malformed."""
        return self._msgpack_decoder.decode(data)

    def to_json(self, envelope: Envelope) -> str:
        """Text form (the PostgreSQL bus: NOTIFY payloads are text)."""
        return self._json_encoder.encode(envelope).decode()

    def from_json(self, data: str | bytes) -> Envelope:
        """Decode; raise ``msgspec.DecodeError`` (or ValidationError) if malformed."""
        return self._json_decoder.decode(data)
