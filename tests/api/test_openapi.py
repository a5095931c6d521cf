"""The OpenAPI document: it names exactly the routes the router serves, it validates,
and it keeps the API's path rule (seed paths as the seeds write them, the rest under
/api/v1, any other exception explained in ``x-tidings-path``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.support.server import RunningServer
from tidings.api import asyncapi, openapi
from tidings.api.openapi import Operation, Param
from tidings.config import Settings
from tidings.server import Server

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def node_app(tmp_path: Path, **overrides: Any) -> Server:
    """A node built as ``tidings serve`` builds it (every app on: SQLite store), not
    started: the router is complete once the Server is constructed."""
    return Server(Settings(database_url=f"sqlite:///{tmp_path / 'doc.db'}", **overrides))


def routes_of(node: Server) -> set[tuple[str, str]]:
    """(method, path) of every route; HEAD is implied by GET."""
    return {(r.method, r.resource.canonical) for r in node.app.router.routes()
            if r.method != "HEAD" and r.resource is not None}


def operations_of(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items()
            for method in item if method in METHODS}


@pytest.mark.parametrize("test_endpoints", [False, True])
def test_every_route_is_documented_and_every_operation_is_a_route(
        tmp_path: Path, test_endpoints: bool) -> None:
    node = node_app(tmp_path, test_endpoints=test_endpoints)
    assert node.editing is not None and node.desks is not None  # every optional app is on
    routes = routes_of(node)
    documented = operations_of(openapi.document(node.app))
    assert routes - documented == set(), "routes without an Operation (add one to the " \
                                         "table next to the route)"
    assert documented - routes == set(), "Operations that name no route"
    assert ("GET", "/api/workstations/{id}") in routes  # the regex routes are compared too
    assert (("GET", "/test/echo") in routes) is test_endpoints
    assert len(routes) > 80


def test_an_app_that_is_off_is_neither_served_nor_documented() -> None:
    # apps_enabled=false turns editing and the desk map off; nothing connects to Redis
    # while the node is only constructed.
    node = Server(Settings(database_url="redis://127.0.0.1:1/0", apps_enabled=False))
    assert node.editing is None and node.desks is None
    doc = openapi.document(node.app)
    assert routes_of(node) == operations_of(doc)
    assert not any(p.startswith(("/api/workstations", "/api/v1/workspaces", "/api/v1/org"))
                   for p in doc["paths"])
    assert list(asyncapi.document(node.app)["channels"]) == ["ws"]


def test_the_coverage_check_sees_a_route_without_description(tmp_path: Path) -> None:
    node = node_app(tmp_path)

    async def handler(request: Any) -> Any:
        raise AssertionError("never called")

    node.app.router.add_get("/api/v1/undocumented", handler)
    assert ("GET", "/api/v1/undocumented") in routes_of(node) - operations_of(
        openapi.document(node.app))


def test_the_document_validates(tmp_path: Path) -> None:
    doc = openapi.document(node_app(tmp_path).app)
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    broken = copy.deepcopy(doc)
    broken["paths"]["/api/v1/messages"]["get"]["parameters"][0]["in"] = "body"  # 2.0's
    with pytest.raises(OpenAPIValidationError):  # the validator does check
        validate(broken)


def test_operations_are_complete_and_ids_unique(tmp_path: Path) -> None:
    doc = openapi.document(node_app(tmp_path).app)
    ids = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            ids.append(op["operationId"])
            assert op["summary"] and op["tags"], (method, path)
            assert any(s.startswith(("2", "3")) or s == "101"  # 302: a redirect
                       for s in op["responses"]), (method, path)
            for status, answer in op["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if schema == {"$ref": "#/components/schemas/ErrorBody"}:
                    assert answer["x-error-codes"], (method, path, status)
                    assert status >= "400"
            if op["security"]:
                assert {"401", "429"} <= set(op["responses"]), (method, path)
            if "requestBody" in op:
                assert {"400", "413", "422"} <= set(op["responses"]), (method, path)
    assert len(ids) == len(set(ids))
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiToken"] == {**schemes["apiToken"], "in": "header", "name": "X-API-Token"}


def test_paths_outside_api_v1_say_why(tmp_path: Path) -> None:
    doc = openapi.document(node_app(tmp_path).app)
    exceptions = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not path.startswith("/api/v1/"):
                assert op.get("x-tidings-path"), f"{method.upper()} {path}: outside /api/v1 " \
                                                 "with no x-tidings-path"
                exceptions[f"{method.upper()} {path}"] = op["x-tidings-path"]
    # The seed's desk paths and the probes are among them; nothing Tidings added slips by.
    assert "GET /api/workstations" in exceptions and "GET /metrics" in exceptions
    assert "GET /api/v1/tokens" not in exceptions


def test_schemas_come_from_the_structs(tmp_path: Path) -> None:
    doc = openapi.document(node_app(tmp_path).app)
    schemas = doc["components"]["schemas"]
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    assert login["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Login"}
    assert set(schemas["Login"]["required"]) == {"username", "password"}
    # Python's \A...\Z anchors become ECMA-262's ^...$ (a JSON Schema pattern).
    assert schemas["Registration"]["properties"]["username"]["pattern"] == r"^[\w.@-]+$"
    one = doc["paths"]["/api/workstations/{id}"]["get"]["parameters"][0]
    assert one == {"name": "id", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"}}


def test_build_merges_common_errors_and_path_patterns() -> None:
    doc = openapi.build([Operation(
        "POST", "/x/{id:[0-9]+}/{name}", "x", "X", "t", body=openapi.ErrorDetail,
        params=(Param("name", str, "a name", "path"), Param("q", int, "a number")),
        errors={400: ("BAD_THING", "BAD_JSON")})])
    op = doc["paths"]["/x/{id}/{name}"]["post"]
    assert op["responses"]["400"]["x-error-codes"] == ["BAD_JSON", "BAD_PARAMETER", "BAD_THING"]
    assert op["responses"]["401"]["x-error-codes"] == ["UNAUTHORIZED"]
    assert [p["name"] for p in op["parameters"]] == ["id", "name", "q"]
    validate(doc)


async def test_served_at_api_openapi_json(tmp_path: Path) -> None:
    node = await RunningServer(f"sqlite:///{tmp_path / 'served.db'}").start()
    try:
        assert node.http is not None
        async with node.http.get(node.http_url + "/api/openapi.json") as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            served = await r.json()
        assert served == openapi.document(node.node.app)
        assert ("GET", "/api/openapi.json") in operations_of(served)
    finally:
        await node.stop()
