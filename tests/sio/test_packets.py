"""The Engine.IO 4 / Socket.IO 5 wire, byte for byte (tidings.sio.packets)."""

from __future__ import annotations

import pytest

from tidings.sio import packets
from tidings.sio.packets import PacketError, SioPacket, decode_sio


def test_open_packet_is_the_handshake_socket_io_client_reads() -> None:
    assert packets.open_packet("abc", ["websocket"], 25.0, 20.0, 1_000_000) == (
        '0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,'
        '"pingTimeout":20000,"maxPayload":1000000}')


def test_messages_the_server_sends() -> None:
    assert packets.event_message("workstation_update", {"a": [1, "é"]}) == \
        '42["workstation_update",{"a":[1,"é"]}]'.encode()
    assert packets.ack_message(7, [{"ok": True}]) == '437[{"ok":true}]'
    assert packets.ack_message(12, []) == "4312[]"
    assert packets.connect_message("s1") == '40{"sid":"s1"}'
    assert packets.connect_error_message("/", "no", {"code": "UNAUTHORIZED"}) == \
        '44{"message":"no","data":{"code":"UNAUTHORIZED"}}'
    assert packets.connect_error_message("/admin", "Invalid namespace") == \
        '44/admin,{"message":"Invalid namespace"}'
    assert packets.DISCONNECT_MESSAGE == "41"


def test_polling_payloads_split_and_join_on_the_record_separator() -> None:
    assert packets.split_payload('40{"token":"t"}\x1e3') == ['40{"token":"t"}', "3"]
    assert packets.join_payload(["2", '42["x",1]']) == '2\x1e42["x",1]'


@pytest.mark.parametrize("text,packet", [
    ("0", SioPacket(0, "/", None, None)),
    ('0{"token":"t","floor":1}', SioPacket(0, "/", None, {"token": "t", "floor": 1})),
    ("0/admin,", SioPacket(0, "/admin", None, None)),
    ("1", SioPacket(1, "/", None, None)),
    ('2["join",{"floor":3}]', SioPacket(2, "/", None, ["join", {"floor": 3}])),
    ('213["join",{"floor":3}]', SioPacket(2, "/", 13, ["join", {"floor": 3}])),
    ('2/chat,5["x"]', SioPacket(2, "/chat", 5, ["x"])),
    ("30[]", SioPacket(3, "/", 0, [])),
])
def test_client_packets_decode(text: str, packet: SioPacket) -> None:
    assert decode_sio(text) == packet


@pytest.mark.parametrize("text,why", [
    ("", "starts with its type"),
    ("x", "starts with its type"),
    ("9", "unknown"),
    ('51-["x",{"_placeholder":true,"num":0}]', "binary"),
    ("2{", "not JSON"),
    ('2{"a":1}', "JSON array starting with its name"),
    ("2[]", "JSON array starting with its name"),
    ("2[1]", "JSON array starting with its name"),
    ("3[]", "an ack is an id"),
    ('0"token"', "auth is a JSON object"),
    ('21234567890123456["x"]', "too long"),
])
def test_bad_client_packets_are_refused_in_words(text: str, why: str) -> None:
    with pytest.raises(PacketError, match=why):
        decode_sio(text)
