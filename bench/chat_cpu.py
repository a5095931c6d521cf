"""Server CPU per durable chat, for comparing commits on a shared machine.

The chat scenario (bench/chat.py) measures a rate, which on this 2-core machine moves
with everyone else's load. This tool measures what one chat costs the node instead: it
starts ``python -m tidings serve`` on a fresh SQLite store from whatever ``tidings`` is
on ``PYTHONPATH`` (so two worktrees can be compared), sends a fixed number of chats over
``/ws`` (users paired 2k <-> 2k+1, ``window`` in flight each, closed loop), waits until
every ``ChatAck`` (107) and every push (102) has arrived, and reports the node's CPU time
over the measured chats (``/proc/PID/stat``, utime + stime), per thread (the event loop
is ``main``, SQLite's worker thread ``python``).

CPU time still varies with load (the batch sizes follow the timing). ``--callgrind`` runs
the node under valgrind and counts instructions over the measured chats only
(``callgrind_control -i on/off``); compare the totals with ``callgrind_annotate``.

    PYTHONPATH=<tree>/src:<tree>/clients/python/src:. python -m bench.chat_cpu --chats 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import jwt
import msgspec

SECRET = "tidings-bench-secret-not-for-production-0123456789"  # noqa: S105
TICK = os.sysconf("SC_CLK_TCK")
AUTH, CHAT, ACK = 1, 2, 3  # client frame types
CHAT_PUSH, ERROR, CHAT_ACK = 102, 106, 107  # server frame types


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of ``pid``, by thread name."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = "main" if tid == str(pid) else head.split("(", 1)[1]
        fields = rest.split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def frame(type_: int, seq: int, payload: dict[str, Any]) -> bytes:
    """A binary client frame: ``{type, seq, payload}`` with a MessagePack payload."""
    return msgspec.msgpack.encode({"type": type_, "seq": seq,
                                   "payload": msgspec.msgpack.encode(payload)})


async def create_users(url: str, count: int) -> list[int]:
    """Migrate the store and create ``count`` users (the tree under test's own code)."""
    from tidings.store import open_store

    store = open_store(url)
    try:
        await store.migrate()
        return [(await store.create_user(f"u{i}", "!unusable")).id for i in range(count)]
    finally:
        await store.close()


class Run:
    """Shared state of one run's users."""

    def __init__(self, users: int, warm_each: int) -> None:
        self.users, self.ready = users, 0
        self.all_ready = asyncio.Event()
        self.go = asyncio.Event()
        self.acked = 0
        self.warm_total = users * warm_each
        self.warm_done = asyncio.Event()


async def chat_user(session: aiohttp.ClientSession, port: int, me: int, partner: int,
                    device: str, total: int, window: int, acks: bool, run: Run) -> None:
    """One user: ``total`` chats to ``partner``, then wait for the partner's ``total``."""
    try:
        await chat_user_frames(session, port, me, partner, device, total, window, acks, run)
    except BaseException:
        run.all_ready.set()  # nobody waits for a run that cannot finish: gather raises
        run.warm_done.set()
        raise


async def chat_user_frames(session: aiohttp.ClientSession, port: int, me: int, partner: int,
                           device: str, total: int, window: int, acks: bool,
                           run: Run) -> None:
    """:func:`chat_user`'s frames."""
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws", max_msg_size=0)
    token = jwt.encode({"sub": str(me), "exp": int(time.time()) + 3600}, SECRET,
                       algorithm="HS256")
    await ws.send_bytes(frame(AUTH, 1, {"token": token, "device_id": device}))
    reply = msgspec.msgpack.decode((await ws.receive()).data)
    if msgspec.msgpack.decode(reply["payload"]).get("success") is not True:
        raise RuntimeError(f"auth refused: {reply}")
    run.ready += 1
    if run.ready == run.users:
        run.all_ready.set()
    await run.go.wait()
    seq = sent = acked = pushed = 0
    chat = {"to": partner, "type": "text", "content": "x" * 60}
    while sent < min(window, total):
        seq, sent = seq + 1, sent + 1
        await ws.send_bytes(frame(CHAT, seq, chat))
    while acked < total or pushed < total:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"unexpected {msg}")
        m = msgspec.msgpack.decode(msg.data)
        if m["type"] == CHAT_ACK:
            acked += 1
            run.acked += 1
            if run.acked == run.warm_total:
                run.warm_done.set()
            if sent < total:
                seq, sent = seq + 1, sent + 1
                await ws.send_bytes(frame(CHAT, seq, chat))
        elif m["type"] == CHAT_PUSH:
            pushed += 1
            if acks:
                mid = msgspec.msgpack.decode(m["payload"])["message_id"]
                await ws.send_bytes(frame(ACK, 0, {"message_id": mid, "status": "delivered"}))
        elif m["type"] == ERROR:
            raise RuntimeError(f"error frame: {m}")
    await ws.close()


def start_node(url: str, port: int, core: str, callgrind: str | None,
               log_path: str) -> subprocess.Popen[bytes]:
    """``tidings serve`` pinned to ``core`` (under callgrind, not counting, if asked)."""
    env = {**os.environ, "TIDINGS_DATABASE_URL": url, "TIDINGS_PORT": str(port),
           "TIDINGS_HOST": "127.0.0.1", "TIDINGS_JWT_SECRET": SECRET,
           "TIDINGS_LOG_LEVEL": "warning", "TIDINGS_RATE_LIMIT": "1000000",
           "TIDINGS_RATE_BURST": "1000000"}
    argv = [sys.executable, "-m", "tidings", "serve"]
    if callgrind:
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={callgrind}", *argv]
    with open(log_path, "wb") as log:
        return subprocess.Popen(["taskset", "-c", core, *argv], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def read_text(path: str) -> str:
    """A file's text (the node's log, once it has exited)."""
    with open(path, errors="replace") as f:
        return f.read()


def callgrind_counting(pid: int, on: bool) -> None:
    """Switch callgrind's instruction counting in ``pid`` on or off."""
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(pid)], check=True,
                   capture_output=True)


async def wait_listening(proc: subprocess.Popen[bytes], port: int, seconds: float,
                         log_path: str) -> None:
    """Until the node accepts connections; its log if it died first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited:\n{read_text(log_path)}") from None
            await asyncio.sleep(0.1)
    raise TimeoutError("the node did not listen")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One run; returns the node's CPU per measured chat, in total and per thread."""
    workdir = tempfile.mkdtemp(prefix="chat-cpu-")
    url = f"sqlite:///{workdir}/chat.db"
    ids = await create_users(url, args.users)
    if args.drop_index:  # an experiment: what one index costs the store thread
        db = sqlite3.connect(f"{workdir}/chat.db")
        for name in args.drop_index:
            db.execute(f"DROP INDEX {name}")
        db.commit()
        db.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = f"{workdir}/node.log"
    proc = start_node(url, port, args.core, args.callgrind, log_path)
    each = -(-args.chats // args.users)
    warm_each = -(-args.warm // args.users)
    try:
        await wait_listening(proc, port, 300.0 if args.callgrind else 30.0, log_path)
        run = Run(args.users, warm_each)
        stamp = time.time_ns()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            users = [asyncio.create_task(chat_user(
                session, port, ids[i], ids[i ^ 1], f"d{stamp}-{i}", each + warm_each,
                args.window, args.acks, run)) for i in range(args.users)]
            await run.all_ready.wait()
            run.go.set()
            await run.warm_done.wait()
            if args.callgrind:
                await asyncio.to_thread(callgrind_counting, proc.pid, True)
            before, t0 = thread_cpu(proc.pid), time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*users), args.timeout)
            after, t1 = thread_cpu(proc.pid), time.perf_counter()
            if args.callgrind:
                await asyncio.to_thread(callgrind_counting, proc.pid, False)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # callgrind writes its file as the node exits
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    chats = each * args.users
    spent = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {"chats": chats, "cpu_s": round(sum(spent.values()), 3),
            "us_per_chat": round(sum(spent.values()) / chats * 1e6, 1),
            "threads_us_per_chat": {k: round(v / chats * 1e6, 1)
                                    for k, v in spent.items() if v > 0},
            "wall_s": round(t1 - t0, 3), "load_average": list(os.getloadavg())}


def main() -> None:
    """Parse the options, run once, print the result as one JSON line."""
    ap = argparse.ArgumentParser(prog="python -m bench.chat_cpu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chats", type=int, default=20_000, help="chats measured")
    ap.add_argument("--warm", type=int, default=2_000, help="chats sent before measuring")
    ap.add_argument("--users", type=int, default=40, help="connections (even: pairs)")
    ap.add_argument("--window", type=int, default=8, help="chats in flight per user")
    ap.add_argument("--acks", action="store_true", help="also send delivery acks")
    ap.add_argument("--core", default="0", help="the core the node is pinned to")
    ap.add_argument("--callgrind", metavar="FILE", help="count instructions into FILE")
    ap.add_argument("--drop-index", action="append", default=[], metavar="NAME",
                    help="experiment: drop this SQLite index before the node starts")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds for the chats")
    print(json.dumps(asyncio.run(measure(ap.parse_args()))))


if __name__ == "__main__":
    main()
