"""A device that connects again replaces its older connection, on any node: the older
one is closed with 4409 if still open, and a killed node's entry of it does not count."""

from __future__ import annotations

import time

import pytest

from tests.cluster.conftest import NODE_TIMEOUT, Cluster
from tests.support.wire import Wire
from tidings.protocol.codes import CloseCode, MsgType

pytestmark = pytest.mark.slow


async def test_a_device_back_on_another_node_replaces_its_old_connection(
        cluster: Cluster) -> None:
    assert cluster.http is not None
    user_id, token = await cluster.register("erin")
    urls = [n.ws_url for n in cluster.nodes]
    phone = await Wire.ready(cluster.http, urls[0], token, "phone")
    laptop = await Wire.ready(cluster.http, urls[1], token, "laptop")
    tablet = await Wire.ready(cluster.http, urls[2], token, "tablet")

    # The laptop reconnects to node C while its socket on node B is still open (a
    # dropped network the server has not noticed): the new one gets the slot, the old
    # one is closed with 4409 through the bus.
    laptop2 = await Wire.ready(cluster.http, urls[2], token, "laptop")
    assert await laptop.closed_with() == CloseCode.TOO_MANY_CONNECTIONS
    # The same on one node: the tablet again on node C.
    tablet2 = await Wire.ready(cluster.http, urls[2], token, "tablet")
    assert await tablet.closed_with() == CloseCode.TOO_MANY_CONNECTIONS
    # A fourth device is still refused: the limit counts devices.
    fourth = await Wire.open(cluster.http, urls[1])
    await fourth.send(MsgType.AUTH, {"token": token, "device_id": "watch"})
    _, rsp = await fourth.expect(MsgType.AUTH_RSP)
    assert not rsp["success"] and rsp["error"].startswith("WS_TOO_MANY_CONNECTIONS")

    # Node A is killed with the phone on it: the phone is back on node B at once, long
    # before A's lease (NODE_TIMEOUT) would have freed its slot.
    cluster.nodes[0].kill()
    started = time.monotonic()
    phone2 = await Wire.ready(cluster.http, urls[1], token, "phone")
    assert time.monotonic() - started < NODE_TIMEOUT / 2
    assert phone2.user_id == user_id
    # Every device is online once, and they still chat.
    for wire in (laptop2, tablet2):
        await wire.send(MsgType.PING)
        await wire.expect(MsgType.PONG)
    ack = await phone2.chat(user_id, "note to self")
    for wire in (laptop2, tablet2):
        _, push = await wire.expect(MsgType.CHAT_PUSH)
        assert push["message_id"] == ack["message_id"]
    await phone.ws.close()
    for wire in (phone2, laptop2, tablet2, fourth):
        await wire.close()
