"""CORS on the REST API (``/api/...``) for the pages of the origins in ``cors_origins``
(seed 000's Vue app on another port, :5173). ``/socket.io`` answers CORS itself
(its own server, tidings.sio, given the same rule: apps/desks/sockets.py).

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a listed origin
is answered 204 with the methods and headers it asked for; from any other origin,
403 ``ORIGIN_NOT_ALLOWED`` without CORS headers, so the browser stops there. Every
other answer to a listed origin, errors included, carries
``Access-Control-Allow-Origin``. No credentials: the API authenticates with
``Authorization: Bearer``, never with cookies.

A small middleware rather than aiohttp-cors: that library needs every route
registered through it, and the routes here come from many packages.
"""

from __future__ import annotations

from aiohttp import web

from tidings.api.errors import ApiError, Handler
from tidings.gateway.origins import origin_listed

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "Retry-After"
MAX_AGE_SECONDS = 600
_PREFIX = "/api/"


class Cors:
    """The CORS rule of one node."""

    def __init__(self, origins: list[str]) -> None:
        self.origins = origins

    def _listed(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin and self.origins and request.path.startswith(_PREFIX) \
                and origin_listed(origin, self.origins):
            return origin
        return None

    @web.middleware
    async def preflight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer a preflight of ``/api/...`` before routing sends it a 405."""
        if request.method != "OPTIONS" or not request.path.startswith(_PREFIX) \
                or "Access-Control-Request-Method" not in request.headers:
            return await handler(request)
        if self._listed(request) is None:
            raise ApiError(403, "ORIGIN_NOT_ALLOWED",
                           f"origin {request.headers.get('Origin')!r} is not in cors_origins")
        asked = request.headers.get("Access-Control-Request-Headers", "")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": asked[:1000] or ALLOW_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS)})

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Let a listed origin read every answer of ``/api/...``."""
        if not self.origins or not request.path.startswith(_PREFIX):
            return
        response.headers.add("Vary", "Origin")  # a cache must not serve one to another
        origin = self._listed(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def add_cors(app: web.Application, origins: list[str]) -> None:
    """Install the preflight middleware and the response hook on ``app``."""
    cors = Cors(origins)
    app.middlewares.append(cors.preflight)
    app.on_response_prepare.append(cors.on_prepare)
