#!/usr/bin/env python3
"""Exit 0 if a Tidings node answers ``GET /api/health`` with 200, else 1.

Usable by Docker's HEALTHCHECK, systemd (ExecStartPost, a timer), PM2 setups, cron or a
load balancer's script check; it needs only Python's standard library.

    tidings-healthcheck [URL] [--timeout SECONDS] [--wait SECONDS]

Without URL it asks the node of this environment: ``TIDINGS_HEALTH_URL`` if set, else
127.0.0.1 (or ``TIDINGS_HOST`` when it names one address) on ``TIDINGS_PORT`` (8443),
over https when ``TIDINGS_TLS_CERT_FILE`` is set (the certificate is not verified: it
names the public host, not 127.0.0.1). With ``--wait`` it asks again every half second
until the node is healthy or the time is up (a unit's ExecStartPost, a deploy script).
It prints one line saying what it saw last.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request


def default_url(environ: dict[str, str]) -> str:
    """The health URL of the node configured by ``environ``."""
    if environ.get("TIDINGS_HEALTH_URL"):
        return environ["TIDINGS_HEALTH_URL"]
    host = environ.get("TIDINGS_HOST", "") or "127.0.0.1"
    if host in ("0.0.0.0", "::", "*"):  # noqa: S104 - a wildcard listen: ask loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = environ.get("TIDINGS_PORT", "") or "8443"
    scheme = "https" if environ.get("TIDINGS_TLS_CERT_FILE") else "http"
    return f"{scheme}://{host}:{port}/api/health"


def check(url: str, timeout: float) -> tuple[bool, str]:
    """Whether ``url`` answered 200, and a line saying what it answered."""
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as reply:  # noqa: S310
            body = reply.read(4096).decode("utf-8", "replace")
            status = reply.status
    except urllib.error.HTTPError as exc:  # 503: store or bus down
        body = exc.read(4096).decode("utf-8", "replace")
        status = exc.code
    except (OSError, ValueError) as exc:  # refused, timed out, not a URL
        return False, f"unhealthy: {url}: {getattr(exc, 'reason', exc)}"
    try:
        body = json.dumps(json.loads(body), separators=(",", ":"))
    except ValueError:
        body = body.strip()[:200]
    return status == 200, f"{'healthy' if status == 200 else 'unhealthy'}: {url}: {status} {body}"


def main(argv: list[str] | None = None) -> int:
    """Run the check; the exit code says healthy (0) or not (1)."""
    parser = argparse.ArgumentParser(prog="tidings-healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", help="health URL (default: from TIDINGS_* env vars)")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds one request may take [default: 3]")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="seconds to keep asking until healthy [default: 0, ask once]")
    args = parser.parse_args(argv)
    url = args.url or default_url(dict(os.environ))
    deadline = time.monotonic() + args.wait
    ok, line = check(url, args.timeout)
    while not ok and time.monotonic() < deadline:
        time.sleep(0.5)
        ok, line = check(url, args.timeout)
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
