"""Publications on the wire: stored JSON text to ``Publication`` frames, encoded once
per framing for all subscribers."""

from __future__ import annotations

from typing import Any

import msgspec

from tidings.protocol.codec import encode_frame
from tidings.protocol.codes import MsgType
from tidings.protocol.messages import ClientInfo, PublicationPayload
from tidings.store.channels import Publication


def publication_payload(pub: Publication, binary: bool) -> PublicationPayload:
    """The wire form of a publication. Text framing embeds the stored JSON as is;
    MessagePack framing carries the decoded value."""
    data: Any = msgspec.json.decode(pub.data) if binary else msgspec.Raw(pub.data.encode())
    return PublicationPayload(pub.channel, pub.offset, pub.type, data,
                              ClientInfo(pub.publisher_id, pub.publisher_device), pub.created_at)


def publication_json(pub: Publication) -> dict[str, Any]:
    """A publication in HTTP answers (history)."""
    return {"channel": pub.channel, "offset": pub.offset, "type": pub.type,
            "data": msgspec.Raw(pub.data.encode()),
            "info": {"user_id": pub.publisher_id, "device_id": pub.publisher_device},
            "created_at": pub.created_at}


def wire_size(pub: Publication) -> int:
    """A generous estimate of a publication's encoded size, for page budgets."""
    return len(pub.data) + len(pub.channel) + len(pub.publisher_device) + 160


class PublicationFrames:
    """One ``Publication`` frame, encoded at most once per framing."""

    __slots__ = ("_binary", "_pub", "_text")

    def __init__(self, pub: Publication) -> None:
        self._pub = pub
        self._binary: bytes | None = None
        self._text: bytes | None = None

    def get(self, binary: bool) -> bytes:
        """The frame in MessagePack (``binary``) or JSON framing."""
        if binary:
            if self._binary is None:
                self._binary = encode_frame(MsgType.PUBLICATION, 0,
                                            publication_payload(self._pub, True), binary=True)
            return self._binary
        if self._text is None:
            self._text = encode_frame(MsgType.PUBLICATION, 0,
                                      publication_payload(self._pub, False), binary=False)
        return self._text
