"""The desk map app (``clients/desk-map``, Vue 3 + Vite) at ``/desks/``.

Vite builds it into ``web/desk_map/`` (``make desk-map``; ``make serve`` builds it
first when its sources changed). ``/desks/assets/NAME`` are the built files, named by a
hash of their content, so browsers may keep them for a year; every other ``/desks/…``
path is the app's one page (Vue Router reads the path). ``/demo/desks``, the old page's
address, redirects here. The strict Content-Security-Policy of every page applies: the
build has no inline script and no ``eval`` (Vue's runtime-only build runs templates
compiled at build time).
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from tidings.api.openapi import Operation, Param, describe
from tidings.web.pages import PAGE_PATH, SECURITY_HEADERS, file_response

BUILT = Path(__file__).parent / "desk_map"
_ASSET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_IMMUTABLE = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=31536000, immutable"}
NOT_BUILT = ("The desk map app is not built. Run `make desk-map` (or `make serve`, which "
             "builds it) in the Tidings repository: it needs Node 20 and npm.\n")


async def page(request: web.Request) -> web.StreamResponse:
    """``GET /desks/…``: the app's page (a client-side route)."""
    index = BUILT / "index.html"
    if not index.is_file():
        return web.Response(status=503, text=NOT_BUILT, headers=SECURITY_HEADERS)
    return file_response(index)


async def asset(request: web.Request) -> web.StreamResponse:
    """``GET /desks/assets/NAME``: a built file, by plain name only."""
    name = request.match_info["name"]
    path = BUILT / "assets" / name if _ASSET.match(name) else None
    if path is None or not path.is_file():
        raise web.HTTPNotFound()
    response = file_response(path)
    response.headers.update(_IMMUTABLE)
    return response


async def to_app(request: web.Request) -> web.StreamResponse:
    """``/desks`` and the old ``/demo/desks``: the app's address."""
    raise web.HTTPFound("/desks/")


def add_routes(app: web.Application) -> None:
    """Register the app's page, its assets and the redirects."""
    describe(app, [
        Operation("GET", "/desks/assets/{name}", "deskMapAsset", "A built file of the desk "
                  "map app", "pages", auth="none", media=("text/javascript", "text/css"),
                  params=(Param("name", str, "a plain file name", "path"),),
                  errors={404: ("NOT_FOUND",)}, extensions=PAGE_PATH),
        Operation("GET", "/desks/{route:.*}", "deskMapPage", "The desk map app's page (any "
                  "path under /desks/ is one of its views)", "pages", auth="none",
                  media="text/html", errors={503: ("NOT_BUILT",)}, extensions=PAGE_PATH),
        *[Operation("GET", path, op, "Redirects (302) to /desks/", "pages", auth="none",
                    status=302, media="text/html", extensions=PAGE_PATH)
          for path, op in (("/desks", "deskMapRedirect"),
                           ("/demo/desks", "oldDeskPageRedirect"))]])
    app.router.add_get("/desks/assets/{name}", asset)
    app.router.add_get("/desks/{route:.*}", page)
    app.router.add_get("/desks", to_app)
    app.router.add_get("/demo/desks", to_app)
