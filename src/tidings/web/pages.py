"""The browser pages Tidings serves itself: the operator dashboard at ``/``, the demos
under ``/demo/``, and their assets under ``/static/``.

Plain ES modules with no build step: ``make serve`` on a fresh machine needs no Node
toolchain, and what is served is what is in the repository. Every page sends a strict
Content-Security-Policy (scripts and styles from this origin only, no inline code),
so user text can only ever be shown as text.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from tidings.api.openapi import Operation, Param, describe

HERE = Path(__file__).parent
STATIC = HERE / "static"
PAGES = HERE / "pages"
_ASSET = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")

# The page routes and their files; a demo joins this table when its API lands.
# The desk map is an app of its own (desk_map_app.py, at /desks/).
ROUTES = {"/": "dashboard.html", "/demo/chat": "chat.html", "/demo/editing": "editing.html",
          "/api/docs": "api-docs.html"}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}


def file_response(path: Path) -> web.FileResponse:
    response = web.FileResponse(path, headers=SECURITY_HEADERS)
    response.content_type = _TYPES.get(path.suffix, "application/octet-stream")
    return response


def _page(filename: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        """One HTML page."""
        return file_response(PAGES / filename)

    return handler


async def asset(request: web.Request) -> web.StreamResponse:
    """``GET /static/NAME``: a file of the static folder, by plain name only."""
    name = request.match_info["name"]
    # resolve(): tidings.js is a link to clients/js/src/tidings.js, its one source.
    path = (STATIC / name).resolve() if _ASSET.match(name) else None
    if path is None or not path.is_file():
        raise web.HTTPNotFound()
    return file_response(path)


PAGE_PATH = {"x-tidings-path": "a page for people, not part of the API"}


def _page_operation(route: str, filename: str) -> Operation:
    """``/demo/chat`` → ``pageDemoChat``, summary from the page's file name."""
    words = [w for w in re.split(r"[/.-]", route) if w] or ["dashboard"]
    return Operation("GET", route, "page" + "".join(w.capitalize() for w in words),
                     f"A page ({filename})", "pages", auth="none", media="text/html",
                     extensions=PAGE_PATH)


def _describe(app: web.Application) -> None:
    ops = [_page_operation(route, filename) for route, filename in ROUTES.items()]
    ops.append(Operation("GET", "/static/{name}", "staticAsset", "A script, style or image "
                         "of the pages", "pages", auth="none",
                         media=tuple(dict.fromkeys(_TYPES.values())),
                         params=(Param("name", str, "a plain file name", "path"),),
                         errors={404: ("NOT_FOUND",)}, extensions=PAGE_PATH))
    describe(app, ops)


def add_routes(app: web.Application) -> None:
    """Register the pages and their assets."""
    _describe(app)
    for route, filename in ROUTES.items():
        app.router.add_get(route, _page(filename))
    app.router.add_get("/static/{name}", asset)
