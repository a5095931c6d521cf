"""Raw-protocol helpers for channel tests: subscribe, publish, read publications."""

from __future__ import annotations

from typing import Any

from tests.support.wire import Wire
from tidings.protocol.codes import MsgType


class Refused(Exception):
    """The server answered a request with MsgError."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload['code']}: {payload['message']}")
        self.code = payload["code"]
        self.message = payload["message"]


class Channels:
    """Channel requests over one raw :class:`Wire`; every publication received (in
    ``SubscribeRsp`` or ``Publication`` frames) is kept in arrival order."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.received: list[dict[str, Any]] = []
        self.presence: list[dict[str, Any]] = []

    async def _answer(self, seq: int, type_: int, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            t, s, payload = await self.wire.recv(timeout)
            if s == seq and t == MsgType.ERROR:
                raise Refused(payload)
            if s == seq and t == type_:
                if t == MsgType.SUBSCRIBE_RSP:
                    self.received += payload["publications"]
                return payload
            self._keep(t, payload)

    def _keep(self, type_: int, payload: dict[str, Any]) -> None:
        if type_ == MsgType.PUBLICATION:
            self.received.append(payload)
        elif type_ == MsgType.CHANNEL_PRESENCE_PUSH:
            self.presence.append(payload)
        else:
            assert type_ in (MsgType.PRESENCE_PUSH, MsgType.PUBLISH_ACK), (type_, payload)

    async def subscribe(self, channel: str, since: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"channel": channel}
        if since is not None:
            body["since"] = since
        return await self._answer(await self.wire.send(MsgType.SUBSCRIBE, body),
                                  MsgType.SUBSCRIBE_RSP)

    async def unsubscribe(self, channel: str) -> dict[str, Any]:
        return await self._answer(await self.wire.send(MsgType.UNSUBSCRIBE, {"channel": channel}),
                                  MsgType.UNSUBSCRIBE_RSP)

    async def publish(self, channel: str, data: Any, **fields: Any) -> dict[str, Any]:
        seq = await self.wire.send(MsgType.PUBLISH, {"channel": channel, "data": data, **fields})
        return await self._answer(seq, MsgType.PUBLISH_ACK)

    async def until(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Read until ``count`` publications were received in total; return them all."""
        while len(self.received) < count:
            t, _, payload = await self.wire.recv(timeout)
            self._keep(t, payload)
        return self.received

    async def quiet(self, seconds: float = 0.3) -> None:
        """Read for ``seconds``, keeping what comes; nothing may be pending afterwards."""
        try:
            while True:
                t, _, payload = await self.wire.recv(seconds)
                self._keep(t, payload)
        except TimeoutError:
            return
