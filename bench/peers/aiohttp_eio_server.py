"""The floor under any Socket.IO server on aiohttp: a bare aiohttp WebSocket endpoint
that answers an Engine.IO 4 open and a Socket.IO connect ("40") and does nothing else
(no auth, no rooms, no pings). The connections scenario measures it beside Tidings'
``/socket.io``: what is left between them is Tidings' own work per connect.
Usage: python aiohttp_eio_server.py PORT
"""

import secrets
import sys

import uvloop
from aiohttp import WSMsgType, web

OPEN = ('0{{"sid":"{}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,'
        '"maxPayload":1000000}}')


async def socket_io(request: web.Request) -> web.WebSocketResponse:
    """Engine.IO open, then "40{sid}" for each "40"."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(OPEN.format(secrets.token_urlsafe(15)))
    async for msg in ws:
        if msg.type == WSMsgType.TEXT and msg.data.startswith("40"):
            await ws.send_str(f'40{{"sid":"{secrets.token_urlsafe(15)}"}}')
    return ws


def main() -> None:
    """Serve on 127.0.0.1:PORT."""
    app = web.Application()
    app.router.add_get("/socket.io/", socket_io)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9104
    print(f"aiohttp Engine.IO floor listening on {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
