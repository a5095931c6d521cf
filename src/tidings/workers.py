"""``tidings serve --workers N``: N nodes on one machine, sharing one port.

The parent migrates the store once, then starts N copies of the same command
line as child processes and supervises them. Each child is a complete node that
binds the port with ``SO_REUSEPORT``, so the kernel spreads new connections over
them; they reach each other's connections through the configured bus, which is
why the in-process ``memory://`` bus is refused. A child that dies is started
again after a second; SIGINT/SIGTERM go to every child, and the parent exits
when they have.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from tidings.config import Settings

log = logging.getLogger("tidings.workers")

WORKER_ENV = "TIDINGS_WORKER_OF"
"""Set in a worker's environment (the parent's pid): bind with SO_REUSEPORT, spawn none."""


def check(settings: Settings) -> str | None:
    """Why ``settings`` cannot run several workers, or None if they can."""
    if settings.workers < 1:
        return "--workers must be at least 1"
    if settings.workers == 1:
        return None
    if settings.bus_url.split("://", 1)[0] == "memory":
        return ("--workers needs a cluster bus (--bus-url redis://… or postgresql://…): "
                "with memory:// each worker would reach only its own connections")
    if settings.port == 0:
        return "--workers needs a fixed --port: with 0 each worker would pick its own"
    if settings.metrics_port:
        return ("--workers cannot share one --metrics-port: run one node per metrics port, "
                "or scrape /metrics on the main port")
    return None


def is_worker() -> bool:
    """True in a child started by :func:`supervise`."""
    return WORKER_ENV in os.environ


def supervise(argv: Sequence[str], workers: int) -> int:
    """Run ``workers`` children with this command line until a signal stops them."""
    command = [sys.executable, "-m", "tidings", *argv]
    env = {**os.environ, WORKER_ENV: str(os.getpid())}
    children: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    stopping = False
    return_code = 0

    def spawn(index: int) -> None:
        children[index] = subprocess.Popen(command, env=env)
        started[index] = time.monotonic()
        log.info("worker %d started (pid %d)", index, children[index].pid)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for index in range(workers):
        spawn(index)
    while True:
        time.sleep(0.2)
        for index, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            if stopping:
                children.pop(index)
            elif time.monotonic() - started[index] < 5.0:
                # It could not even start (port taken, bad settings): retrying would loop.
                log.error("worker %d exited with %s at start; stopping", index, code)
                stop(signal.SIGTERM, None)
                children.pop(index)
                return_code = code or 1
            else:
                log.error("worker %d (pid %d) exited with %s; starting it again in 1 s",
                          index, child.pid, code)
                time.sleep(1.0)
                spawn(index)
        if stopping and not children:
            return return_code
