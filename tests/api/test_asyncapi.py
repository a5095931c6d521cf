"""The AsyncAPI document of the WebSockets: it validates against the AsyncAPI 3.0 JSON
Schema (vendored from npm @asyncapi/specs by scripts/vendor-api-docs), it names every
type, error and close code of protocol/codes.py, and docs/protocol.md agrees with it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.server import RunningServer
from tidings.api import asyncapi
from tidings.config import Settings
from tidings.protocol.codes import CloseCode, EditingEventType, ErrorCode, MsgType
from tidings.server import Server

HERE = Path(__file__).parent
PROTOCOL_MD = HERE.parents[1] / "docs" / "protocol.md"
SCHEMA = json.loads((HERE / "asyncapi-3.0.0.schema.json").read_text())


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document of a node built as ``tidings serve`` builds it (SQLite: every app)."""
    path = tmp_path_factory.mktemp("asyncapi") / "doc.db"
    document: dict[str, Any] = asyncapi.document(Server(Settings(
        database_url=f"sqlite:///{path}")).app)
    return document


def errors_of(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def section(heading: str) -> str:
    """The text of docs/protocol.md from ``heading`` to the next heading."""
    text = PROTOCOL_MD.read_text()
    start = text.index(heading + "\n")
    end = text.find("\n#", start + len(heading))
    return text[start:end]


def test_validates_against_the_asyncapi_3_schema(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert errors_of(doc) == []
    broken = copy.deepcopy(doc)
    broken["operations"]["ws.MsgChat"]["action"] = "publish"  # AsyncAPI 2's verb
    assert errors_of(broken)  # the schema does check


def test_every_type_code_has_one_message_with_its_struct(doc: dict[str, Any]) -> None:
    keys = [msg.key for msg in asyncapi.WS_MESSAGES]
    assert sorted(keys) == sorted(MsgType)
    messages = doc["components"]["messages"]
    by_code = {m["x-tidings-type"]: m for m in messages.values() if "." not in m["name"]}
    assert set(by_code) == {int(t) for t in MsgType}
    chat = by_code[MsgType.CHAT]["payload"]["properties"]
    assert chat["type"] == {"const": 2}
    assert chat["payload"] == {"$ref": "#/components/schemas/ChatPayload"}
    assert set(doc["components"]["schemas"]["ChatPayload"]["required"]) == {"to", "type",
                                                                           "content"}
    assert "payload" not in by_code[MsgType.PING]["payload"]["properties"]
    auth = doc["operations"]["ws.MsgAuth"]
    assert auth["action"] == "receive"  # the server's view: clients send MsgAuth
    assert auth["reply"]["messages"] == [{"$ref": "#/channels/ws/messages/MsgAuthRsp"}]
    assert doc["operations"]["ws.MsgChatPush"]["action"] == "send"


def test_every_editing_event_is_described(doc: dict[str, Any]) -> None:
    channel = doc["channels"]["editing"]
    assert channel["address"] == "/api/v1/ws/editing/{session_id}"
    sent = {m["x-tidings-type"] for name, m in doc["components"]["messages"].items()
            if name.startswith("editing.") and
            doc["operations"][name]["action"] == "send"}
    assert sent == {e.value for e in EditingEventType}
    connected = doc["components"]["messages"]["editing.connected"]["payload"]
    assert connected["properties"]["data"] == {"$ref": "#/components/schemas/Connected"}


def test_protocol_md_message_types_agree(doc: dict[str, Any]) -> None:
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| (client|server) → (?:server|client) \|",
                      section("## Message types"), re.M)
    in_docs = {(int(code), name, sender) for code, name, sender in rows}
    described = {(int(m.key), m.name, m.sender) for m in asyncapi.WS_MESSAGES}
    assert in_docs == described
    assert {c for c, _, _ in in_docs} == {int(t) for t in MsgType}


def test_protocol_md_error_codes_agree(doc: dict[str, Any]) -> None:
    in_docs = re.findall(r"^\| `(WS_\w+)` \|", section("### Error codes"), re.M)
    assert len(in_docs) == len(set(in_docs))
    codes = {c.value for c in ErrorCode}
    assert set(in_docs) == codes
    assert set(doc["channels"]["ws"]["x-tidings-error-codes"]) == codes
    assert set(doc["components"]["schemas"]["ErrorCode"]["enum"]) == codes


def test_protocol_md_close_codes_agree(doc: dict[str, Any]) -> None:
    in_docs = set()
    for cell in re.findall(r"^\| ([\d /]+) \|", section("## Close codes"), re.M):
        in_docs |= {int(x) for x in cell.split("/")}
    described = {c["code"] for c in doc["channels"]["ws"]["x-tidings-close-codes"]}
    assert in_docs == described
    assert {int(c) for c in CloseCode} <= described


def test_protocol_md_links_the_document() -> None:
    assert "/api/asyncapi.json" in PROTOCOL_MD.read_text()


async def test_served_at_api_asyncapi_json(tmp_path: Path) -> None:
    node = await RunningServer(f"sqlite:///{tmp_path / 'served.db'}").start()
    try:
        assert node.http is not None
        async with node.http.get(node.http_url + "/api/asyncapi.json") as r:
            assert r.status == 200
            served = await r.json()
        assert served == asyncapi.document(node.node.app)
        assert set(served["channels"]) == {"ws", "editing"}
    finally:
        await node.stop()
