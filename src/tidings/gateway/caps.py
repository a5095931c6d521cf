"""Connection caps (seed 001 §6.1, seed 000 §2.2 and §4.1): at most
``max_connections`` open sockets on this node and ``max_connections_per_ip`` from one
client address, counting every kind a client opens — ``/ws``, ``/socket.io`` and
the editing socket. A request over a cap is refused before the upgrade with HTTP
429, a JSON error and ``Retry-After`` (docs/security.md, "Connection caps").

The middleware takes a :class:`Lease` (one slot) for each request that would open a
socket. An endpoint whose socket outlives its request (``/ws`` hands its socket over;
a Socket.IO session lives across polling requests) :func:`claim`\\ s the lease and
releases it when the socket ends; any other lease is released when the request ends.
The client address is the TCP peer, or, when the peer is one of ``trusted_proxies``,
the last address in ``X-Forwarded-For`` that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from tidings.api.errors import ApiError

RETRY_AFTER_SECONDS = 5
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Lease:
    """One slot of the caps, held by one socket (or one request about to open it)."""

    __slots__ = ("_caps", "address", "claimed")

    def __init__(self, caps: ConnectionCaps | None, address: str) -> None:
        self._caps = caps
        self.address = address
        self.claimed = False

    def release(self) -> None:
        """Give the slot back (once; later calls do nothing)."""
        caps, self._caps = self._caps, None
        if caps is not None:
            caps.released(self.address)


_LEASE: web.RequestKey[Lease] = web.RequestKey("connection_lease", Lease)


def claim(request: web.Request) -> Lease:
    """Take over the lease of ``request``: the caller now releases it when its socket
    ends. Without caps (a node built without them) the lease holds nothing."""
    lease: Lease | None = request.get(_LEASE)
    if lease is None:
        return Lease(None, request.remote or "")
    lease.claimed = True
    return lease


def opens_socket(request: web.Request) -> bool:
    """Does this request open a socket: ``GET /ws``, the editing socket, or a new
    Socket.IO session (no ``sid`` yet; later polls and upgrades belong to it)."""
    if request.method != "GET":
        return False
    path = request.path
    if path == "/ws" or path.startswith("/api/v1/ws/editing/"):
        return True
    return path.startswith("/socket.io") and "sid" not in request.query


def parse_networks(entries: list[str]) -> list[Network]:
    """``trusted_proxies`` as networks; ``ValueError`` naming a bad entry."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"invalid setting: trusted_proxies: {entry!r} is not an "
                             "address or CIDR") from None
    return networks


class ConnectionCaps:
    """Open sockets of this node, in all and per client address."""

    def __init__(self, max_total: int, max_per_address: int, trusted_proxies: list[str],
                 registry: CollectorRegistry) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._proxies = parse_networks(trusted_proxies)
        self.open = 0
        self.by_address: dict[str, int] = {}
        self.refused = {"node": 0, "address": 0}
        self._refused = Counter("tidings_connections_refused_total",
                                "Sockets refused with 429 before the upgrade, by cap "
                                "(node: max_connections, address: max_connections_per_ip)",
                                ["cap"], registry=registry)
        gauge = Gauge("tidings_connection_slots", "Open sockets counted by the caps "
                      "(/ws, /socket.io, editing)", registry=registry)
        gauge.set_function(lambda: float(self.open))

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._proxies)

    def client_address(self, request: web.Request) -> str:
        """The address the per-address cap counts (see the module docstring)."""
        peer = request.remote or ""
        if not self._proxies or not self._trusted(peer):
            return peer
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", []))
                .split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else peer

    def acquire(self, request: web.Request) -> Lease:
        """A slot for ``request``'s socket, or ``ApiError`` 429 with ``Retry-After``."""
        address = self.client_address(request)
        if self.max_total and self.open >= self.max_total:
            self._refuse("node", "TOO_MANY_CONNECTIONS",
                         f"this node holds its maximum of {self.max_total} connections")
        held = self.by_address.get(address, 0)
        if self.max_per_address and held >= self.max_per_address:
            self._refuse("address", "TOO_MANY_CONNECTIONS_PER_IP",
                         f"{address} holds its maximum of {self.max_per_address} connections")
        self.open += 1
        self.by_address[address] = held + 1
        return Lease(self, address)

    def _refuse(self, cap: str, code: str, message: str) -> None:
        self.refused[cap] += 1
        self._refused.labels(cap).inc()
        raise ApiError(429, code, f"{message}; retry in {RETRY_AFTER_SECONDS} s",
                       {"Retry-After": str(RETRY_AFTER_SECONDS)})

    def released(self, address: str) -> None:
        """One socket of ``address`` ended."""
        self.open -= 1
        left = self.by_address.get(address, 1) - 1
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)

    def snapshot(self) -> dict[str, object]:
        """The caps' part of ``GET /api/metrics``."""
        return {"open": self.open, "addresses": len(self.by_address),
                "max_connections": self.max_total,
                "max_connections_per_ip": self.max_per_address,
                "refused": dict(self.refused)}

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """The aiohttp middleware taking a lease for every request that opens a socket."""
        @web.middleware
        async def capped(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not opens_socket(request):
                return await handler(request)
            lease = request[_LEASE] = self.acquire(request)
            try:
                return await handler(request)
            finally:
                if not lease.claimed:
                    lease.release()
        return capped
