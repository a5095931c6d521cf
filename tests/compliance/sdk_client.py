"""Drive Autobahn's fuzzingserver (``kosoku -m fuzzingserver``) with the Python SDK's
transport, :class:`tidings.client.AiohttpTransport`, as every Autobahn test client does:

1. connect to ``/getCaseCount`` and read the number of cases (one text message);
2. for each case N, connect to ``/runCase?case=N&agent=AGENT`` and echo every text
   and binary message back, in the same framing, until the server closes (one case
   at a time, or ``-p N`` at once);
3. connect to ``/updateReports?agent=AGENT``, which ends the run (kosoku then
   writes its reports).

Only the SDK's transport is used (``connect``, ``recv``, ``send``, ``close``), with
its defaults, so the report measures what the SDK does on the wire: aiohttp's
``ws_connect`` with autoping and autoclose on, and its default 4 MiB message limit.

Usage: ``python -m tests.compliance.sdk_client ws://127.0.0.1:9001 [--agent NAME]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any

import aiohttp

from tidings.client import AiohttpTransport, TransportClosed

AGENT = "tidings-sdk"


async def _echo(url: str, case_timeout: float, ws_options: dict[str, Any]) -> None:
    """Echo one case's messages until the fuzzing server closes."""
    try:
        transport = await AiohttpTransport.connect(url, **ws_options)
    except (aiohttp.ClientError, OSError) as exc:  # the case runs (and fails) without us
        print(f"{url}: cannot connect: {exc}", file=sys.stderr)
        return
    try:
        async with asyncio.timeout(case_timeout):
            while True:
                data = await transport.recv()
                await transport.send(data)
    except TransportClosed:
        pass
    except TimeoutError:
        print(f"{url}: still open after {case_timeout:.0f} s, closing", file=sys.stderr)
    finally:
        await transport.close()


async def _case_count(base: str) -> int:
    transport = await AiohttpTransport.connect(f"{base}/getCaseCount")
    try:
        return int(await transport.recv())
    finally:
        await transport.close()


async def _update_reports(base: str, agent: str) -> None:
    # kosoku answers the upgrade and stops; the close may find the socket gone.
    with contextlib.suppress(aiohttp.ClientError, OSError, TransportClosed):
        transport = await AiohttpTransport.connect(f"{base}/updateReports?agent={agent}",
                                                   close_timeout=1.0)
        await transport.close()


async def run(base: str, agent: str = AGENT, case_timeout: float = 120.0,
              quiet: bool = False, max_msg_size: int | None = None,
              parallelism: int = 1) -> int:
    """Run every case the fuzzing server at ``base`` offers; return how many.

    ``max_msg_size`` overrides aiohttp's default message limit (4 MiB) through the
    transport's ``ws_options``; by default the SDK's own defaults are measured.
    ``parallelism`` > 1 runs that many cases at once (kosoku serves each case on
    its own connection); Autobahn clients traditionally run one at a time.
    """
    base = base.rstrip("/")
    ws_options: dict[str, Any] = {} if max_msg_size is None else {"max_msg_size": max_msg_size}
    count = await _case_count(base)
    started = time.monotonic()
    slots = asyncio.Semaphore(parallelism)
    done = 0

    async def one(n: int) -> None:
        nonlocal done
        async with slots:
            await _echo(f"{base}/runCase?case={n}&agent={agent}", case_timeout, ws_options)
        done += 1
        if not quiet and (done % 50 == 0 or done == count):
            print(f"  client: {done}/{count} cases, {time.monotonic() - started:.1f} s",
                  file=sys.stderr)

    await asyncio.gather(*(one(n) for n in range(1, count + 1)))
    await _update_reports(base, agent)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="ws://HOST:PORT of the fuzzing server")
    parser.add_argument("--agent", default=AGENT, help="agent name in the report")
    parser.add_argument("--case-timeout", type=float, default=120.0,
                        help="give up on one case after this many seconds")
    parser.add_argument("--max-msg-size", type=int, default=None,
                        help="aiohttp message limit, bytes (default: the SDK's, 4 MiB)")
    parser.add_argument("-p", "--parallelism", type=int, default=1,
                        help="cases run at once (default: one after the other)")
    args = parser.parse_args()
    asyncio.run(run(args.url, args.agent, args.case_timeout, max_msg_size=args.max_msg_size,
                    parallelism=args.parallelism))


if __name__ == "__main__":
    main()
