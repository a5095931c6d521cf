"""The python-socketio peer (what a Python team would reach for), on aiohttp + uvloop.

Every client joins room "bench"; a "pub" event goes to the room as "msg", except to
its sender. Usage: python pysio_server.py PORT
"""

import sys

import socketio
import uvloop
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"],
                           cors_allowed_origins="*")


@sio.event
async def connect(sid: str, environ: dict, auth: object = None) -> None:
    """Put every client in the benchmark room."""
    await sio.enter_room(sid, "bench")


@sio.on("pub")
async def pub(sid: str, data: object) -> None:
    """Fan one published message out to the room."""
    await sio.emit("msg", data, room="bench", skip_sid=sid)


def main() -> None:
    """Serve on 127.0.0.1:PORT."""
    app = web.Application()
    sio.attach(app)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9103
    print(f"python-socketio peer listening on {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
