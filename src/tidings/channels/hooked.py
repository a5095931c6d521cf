"""The subscribe and publish hooks around the broker (docs/integration.md).

Tidings' own rules run first (namespace, scopes, size): a hook can only narrow them,
never open a channel the rules close. Then the hook is asked; a publish hook may
answer ``{"result": {"data": ...}}`` to store other data than the client sent (checked
against ``max_publication_bytes`` again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from tidings.channels.errors import BrokerError
from tidings.hooks import HookRefused, HookUnavailable
from tidings.hooks.backend import HookName
from tidings.protocol.codes import ErrorCode
from tidings.store.channels import NewPublication

if TYPE_CHECKING:
    from tidings.channels.broker import Broker


async def _ask(broker: Broker, hook: HookName, request: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return await broker.service.hooks.call(hook, request)
    except HookRefused as exc:
        raise BrokerError(ErrorCode.REFUSED_BY_BACKEND, exc.message, 403) from None
    except HookUnavailable as exc:
        raise BrokerError(ErrorCode.BACKEND_UNAVAILABLE, str(exc), 503) from None


async def check_subscribe(broker: Broker, who: dict[str, Any], channel: str,
                          since: int | None) -> None:
    """Ask the subscribe hook, if set; raise :class:`BrokerError` if it refuses."""
    if broker.service.hooks.enabled("subscribe"):
        await _ask(broker, "subscribe", {**who, "channel": channel, "since": since})


async def prepare_publication(broker: Broker, who: dict[str, Any], channel: str, type_: str,
                              data: Any, key: str | None, user_id: int, device: str,
                              scopes: tuple[str, ...] | None) -> NewPublication:
    """:meth:`Broker.prepare`, then the publish hook, which may refuse or rewrite ``data``."""
    item = broker.prepare(channel, type_, data, key, user_id, device, scopes)
    if not broker.service.hooks.enabled("publish"):
        return item
    result = await _ask(broker, "publish", {**who, "channel": channel, "type": type_,
                                            "data": data, "idempotency_key": key})
    if result and "data" in result:
        item = msgspec.structs.replace(item, data=broker.encode_data(result["data"]))
    return item


def http_client(remote: str, headers: dict[str, str], user_id: int) -> dict[str, Any]:
    """Who publishes over HTTP, for a hook's request."""
    return {"client": "", "transport": "http", "remote": remote, "headers": headers,
            "user_id": user_id, "device_id": "http"}
