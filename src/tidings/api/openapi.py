"""The OpenAPI 3.1 document of a node's HTTP API, built from the routes it serves.

Each module that adds routes also describes them, next to them, with a table of
:class:`Operation` and one call to :func:`describe` in its ``add_routes``. The
document served at ``GET /api/openapi.json`` is built from what the app registered,
so an app that is off (editing and desks on the Redis store) is neither served nor
documented. Schemas come from the msgspec structs the handlers decode and encode
(``msgspec.json.schema_components``); ``tests/api/test_openapi.py`` fails when a
route of the router has no operation here or an operation names no route.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from aiohttp import web

from tidings import __version__
from tidings.api.errors import json_response

Auth = Literal["token", "none", "admin", "desk-admin"]
Where = Literal["query", "path", "header"]

OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "next to /api/docs, unversioned: it describes every version"
JSON = "application/json"


@dataclass(frozen=True)
class Param:
    """A query, path or header parameter. ``type`` is any type msgspec can describe."""

    name: str
    type: Any = str
    description: str = ""
    where: Where = "query"
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One route as the document shows it.

    ``path`` is the aiohttp path, regex parts included (``/x/{id:[0-9]+}``): path
    parameters the table does not describe become strings with that pattern.
    ``answer`` is a type, or a tuple of types the answer is one of. ``errors`` maps an
    HTTP status to the error ``code`` values the route may answer
    with it, besides those every route of its kind may answer (see :func:`_errors`).
    """

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    auth: Auth = "token"
    params: tuple[Param, ...] = ()
    body: Any = None
    body_required: bool = True
    answer: Any = None
    status: int = 200
    also: tuple[int, ...] = ()  # other statuses answered with the same schema
    media: str | tuple[str, ...] = JSON  # the answer's content type(s)
    description: str = ""
    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    schemes: tuple[str, ...] = ("bearer", "apiToken")  # how the token may come
    extensions: dict[str, Any] = field(default_factory=dict)


class ErrorDetail(msgspec.Struct):
    """What went wrong: a stable ``code`` (listed per response) and words for humans."""

    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every 4xx/5xx answer of the HTTP API."""

    error: ErrorDetail


# How the reference groups operations: the API people call first, pages last.
TAG_ORDER = ("accounts", "messages", "presence", "users", "tokens", "channels", "realtime",
             "editing", "desks", "desk organisation", "cluster", "admin", "core", "documents",
             "pages", "test")

OPERATIONS: web.AppKey[list[Operation]] = web.AppKey("openapi_operations", list)

_PARAM = re.compile(r"\{(\w+)(?::((?:[^{}]|\{[^{}]*\})+))?\}")
_AUTH_NOTE = {"admin": "Needs a token with the `admin` scope.",
              "desk-admin": "Needs desk-admin rights (the `desk_admins` setting or table, "
                            "or a token with the `admin` scope)."}
_BODY_ERRORS = {400: ("BAD_JSON",), 408: ("BODY_TIMEOUT",), 413: ("BODY_TOO_LARGE",),
                422: ("INVALID_BODY",)}
_TOKEN_ERRORS = {401: ("UNAUTHORIZED",), 429: ("RATE_LIMITED",)}

DESCRIPTION = """\
The HTTP API of a Tidings node. The real-time protocol of `/ws` and of the editing
socket is described by the AsyncAPI document at `/api/asyncapi.json`.

Errors are `{"error": {"code", "message"}}` with a 4xx or 5xx status; each response
lists its codes (`x-error-codes`). A server fault is 500 `INTERNAL_ERROR` on any route.
Every `GET` also answers `HEAD`.

Paths: the paths the design seeds name (`/api/workstations`, `/api/map`, `/api/desks`,
`/api/database/sync`, `/api/metrics`, `/api/health`, `/metrics`, the editing routes of
seed 002 under `/api/v1/workspaces`) stay as the seeds write them; everything Tidings
adds lives under `/api/v1`. Operations outside `/api/v1` say why in `x-tidings-path`.
"""


def describe(app: web.Application, operations: Iterable[Operation]) -> None:
    """Register the description of routes ``app`` serves (call next to adding them)."""
    if OPERATIONS not in app:
        app[OPERATIONS] = []
    app[OPERATIONS].extend(operations)


def openapi_path(path: str) -> str:
    """An aiohttp path as OpenAPI writes it: ``/x/{id:[0-9]+}`` → ``/x/{id}``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def ecma_patterns(node: Any) -> Any:
    """Python's ``\\A…\\Z`` anchors as ECMA-262's ``^…$`` (same meaning there)."""
    if isinstance(node, dict):
        out = {k: ecma_patterns(v) for k, v in node.items()}
        if isinstance(out.get("pattern"), str):
            pattern: str = out["pattern"]
            if pattern.startswith("\\A"):
                pattern = "^" + pattern[2:]
            if pattern.endswith("\\Z"):
                pattern = pattern[:-2] + "$"
            out["pattern"] = pattern
        return out
    if isinstance(node, list):
        return [ecma_patterns(v) for v in node]
    return node


def _errors(op: Operation) -> dict[int, tuple[str, ...]]:
    merged: dict[int, list[str]] = {}
    common = [_TOKEN_ERRORS if op.auth != "none" else {},
              _BODY_ERRORS if op.body is not None else {},
              {400: ("BAD_PARAMETER",)} if any(p.where == "query" for p in op.params) else {},
              op.errors]
    for table in common:
        for status, codes in table.items():
            merged.setdefault(status, [])
            merged[status] += [c for c in codes if c not in merged[status]]
    return {s: tuple(merged[s]) for s in sorted(merged)}


def _path_params(op: Operation) -> list[Param]:
    given = {p.name for p in op.params if p.where == "path"}
    found = []
    for match in _PARAM.finditer(op.path):
        name, regex = match.group(1), match.group(2)
        if name not in given:
            found.append(Param(name, str, "", "path", True))
            if regex:
                found[-1] = Param(name, _Pattern(f"^{regex}$"), "", "path", True)
    return found


@dataclass(frozen=True)
class _Pattern:
    """A string type by its pattern (a path parameter's regex)."""

    regex: str


def _schema_of(kind: Any, schemas: dict[int, dict[str, Any]]) -> dict[str, Any]:
    if isinstance(kind, _Pattern):
        return {"type": "string", "pattern": kind.regex}
    return schemas[id(kind)]


def build(operations: Iterable[Operation], *, title: str = "Tidings HTTP API") -> Any:
    """The OpenAPI 3.1 document of ``operations``."""
    ops = sorted(operations, key=lambda o: (openapi_path(o.path), o.method))
    kinds: list[Any] = [ErrorBody]
    for op in ops:
        kinds += [p.type for p in (*op.params, *_path_params(op))
                  if not isinstance(p.type, _Pattern)]
        kinds += [k for k in (op.body, *_answers(op)) if k is not None]
    unique = list({id(k): k for k in kinds}.values())
    found, components = msgspec.json.schema_components(
        unique, ref_template="#/components/schemas/{name}")
    schemas = {id(k): s for k, s in zip(unique, found, strict=True)}
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(openapi_path(op.path), {})[op.method.lower()] = _operation(op, schemas)
    return ecma_patterns({
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__, "description": DESCRIPTION,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "tags": [{"name": t} for t in sorted(
            dict.fromkeys(o.tag for o in ops),
            key=lambda t: (TAG_ORDER.index(t) if t in TAG_ORDER else len(TAG_ORDER), t))],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An opaque token (`tdg_…`, from login or "
                                          "`POST /api/v1/tokens`) or a JWT."},
                "apiToken": {"type": "apiKey", "in": "header", "name": "X-API-Token",
                             "description": "The same token, for clients that cannot set "
                                            "`Authorization`."},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token",
                               "description": "The same token in the URL: WebSockets "
                                              "opened by browsers, which cannot set "
                                              "headers (the editing socket)."}}},
    })


def _answers(op: Operation) -> tuple[Any, ...]:
    """The answer's types: one, or a tuple of alternatives (a ``oneOf``)."""
    return op.answer if isinstance(op.answer, tuple) else (op.answer,)


def _operation(op: Operation, schemas: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary,
                           "tags": [op.tag]}
    note = _AUTH_NOTE.get(op.auth, "")
    description = " ".join(x for x in (op.description, note) if x)
    if description:
        out["description"] = description
    out["security"] = [] if op.auth == "none" else [{s: []} for s in op.schemes]
    params = [*_path_params(op), *op.params]
    if params:
        out["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
             "schema": _schema_of(p.type, schemas),
             **({"description": p.description} if p.description else {})} for p in params]
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required,
                              "content": {JSON: {"schema": schemas[id(op.body)]}}}
    answer: dict[str, Any] = {"description": op.summary}
    medias = op.media if isinstance(op.media, tuple) else (op.media,)
    if op.answer is not None:
        found = [schemas[id(k)] for k in _answers(op)]
        schema = found[0] if len(found) == 1 else {"oneOf": found}
        answer["content"] = {m: {"schema": schema} for m in medias}
    elif op.media != JSON:
        answer["content"] = {m: {"schema": {"type": "string"}} for m in medias}
    responses: dict[str, Any] = {str(op.status): answer}
    for status in op.also:
        responses[str(status)] = {**answer, "description": f"{op.summary} ({status})"}
    for status, codes in _errors(op).items():
        responses[str(status)] = {
            "description": ", ".join(codes),
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            "x-error-codes": list(codes)}
    out["responses"] = responses
    out.update(op.extensions)
    return out


DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document", dict)


def document(app: web.Application) -> dict[str, Any]:
    """The document of ``app``, built on first use (once every route is added)."""
    if not app[DOCUMENT]:
        found: list[Operation] | None = app.get(OPERATIONS)
        app[DOCUMENT].update(build(found or []))
    return app[DOCUMENT]


async def openapi_json(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``: this document."""
    return json_response(document(request.app))

ROUTES = (
    Operation("GET", OPENAPI_PATH, "getOpenApi", "This OpenAPI 3.1 document", "documents",
              auth="none", answer=dict[str, Any], extensions={"x-tidings-path": DOCS_PATH}),
)


def add_routes(app: web.Application) -> None:
    """Serve the document at ``/api/openapi.json``."""
    describe(app, ROUTES)
    app[DOCUMENT] = {}
    app.router.add_get(OPENAPI_PATH, openapi_json)
