"""Tidings as a server under test: its store, users, tokens, and a pinned node.

Users are created through the store's own interface (no password hashing: they
log in with JWTs, as a deployment with an identity provider would), and each
load-generator connection authenticates with ``MsgAuth`` on the full code path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt

from bench.harness import SERVER_CORE, Server
from bench.peers import python
from tidings.protocol.codec import encode_frame
from tidings.protocol.codes import MsgType
from tidings.protocol.messages import AuthPayload
from tidings.store import open_store

# Signs the load generator's JWTs; the node under test accepts only these.
JWT_SECRET = "tidings-bench-secret-not-for-production-0123456789"  # noqa: S105


async def create_users(database_url: str, count: int) -> list[int]:
    """Migrate the store and create ``count`` users; return their ids."""
    store = open_store(database_url)
    try:
        await store.migrate()
        ids = []
        for i in range(count):  # one at a time: SQLite has one writer anyway
            ids.append((await store.create_user(f"bench{i}", "!unusable")).id)
        return ids
    finally:
        await store.close()


def auth_frame(user_id: int, device_id: str) -> bytes:
    """A binary ``MsgAuth`` with a JWT for ``user_id``."""
    token = jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 86_400}, JWT_SECRET,
                       algorithm="HS256")
    return encode_frame(MsgType.AUTH, 1, AuthPayload(token=token, device_id=device_id),
                        binary=True)


def ping_frame() -> bytes:
    """A binary ``MsgPing`` (keeps a connection inside ``idle_timeout``)."""
    return encode_frame(MsgType.PING, 0, None, binary=True)


def write_init(path: Path, lines: list[tuple[int, int]]) -> Path:
    """One line per connection: (user id, chat partner's user id or 0)."""
    run = int(time.time())
    with path.open("w") as f:
        for i, (user, partner) in enumerate(lines):
            frame = auth_frame(user, f"bench-{run}-{i}").hex()
            f.write(f"to:{partner} b:{frame}\n")
    return path


def start(workdir: Path, database_url: str, port: int, *, core: str = SERVER_CORE,
          **settings: Any) -> Server:
    """Run ``tidings serve`` on ``core`` (the server core) with benchmark settings."""
    env = {"TIDINGS_DATABASE_URL": database_url, "TIDINGS_PORT": str(port),
           "TIDINGS_HOST": "127.0.0.1", "TIDINGS_JWT_SECRET": JWT_SECRET,
           "TIDINGS_LOG_LEVEL": "warning"}
    env.update({f"TIDINGS_{k.upper()}": str(v) for k, v in settings.items()})
    tidings = str(Path(python()).parent / "tidings")
    return Server("tidings", [tidings, "serve"], port, env=env, core=core,
                  log=workdir / f"tidings-{port}.log").ready()


def subscribe_frame(channel: str) -> bytes:
    """A binary ``Subscribe`` to ``channel``."""
    from tidings.protocol.messages import SubscribePayload

    return encode_frame(MsgType.SUBSCRIBE, 2, SubscribePayload(channel=channel), binary=True)


def publish_frame(channel: str, seq: int, data: str) -> bytes:
    """A binary ``Publish`` of ``data`` to ``channel``."""
    from tidings.protocol.messages import PublishPayload

    return encode_frame(MsgType.PUBLISH, seq, PublishPayload(channel=channel, data=data),
                        binary=True)
