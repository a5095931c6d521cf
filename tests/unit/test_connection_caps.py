"""Connection caps, the Origin rule and CORS, unit by unit (the end-to-end cases are in
tests/seeds/test_seed000_socketio.py)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from tidings.api.errors import ApiError
from tidings.config import load_settings
from tidings.gateway.caps import ConnectionCaps, claim, opens_socket, parse_networks
from tidings.gateway.origins import origin_allowed, origin_listed


def _request(path: str = "/ws", method: str = "GET", **headers: str) -> web.Request:
    return make_mocked_request(method, path, headers=headers).clone(remote="127.0.0.1")


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    caps = ConnectionCaps(0, 0, ["127.0.0.0/8", "10.1.0.0/16"], CollectorRegistry())
    chain = "203.0.113.9, 198.51.100.7, 10.1.2.3"
    # make_mocked_request's peer is 127.0.0.1: a trusted proxy.
    assert caps.client_address(_request(**{"X-Forwarded-For": chain})) == "198.51.100.7"
    assert caps.client_address(_request(**{"X-Forwarded-For": "10.1.0.1"})) == "10.1.0.1"
    assert caps.client_address(_request()) == "127.0.0.1"
    untrusting = ConnectionCaps(0, 0, [], CollectorRegistry())
    assert untrusting.client_address(_request(**{"X-Forwarded-For": chain})) == "127.0.0.1"


def test_caps_count_release_once_and_refuse_with_retry_after() -> None:
    caps = ConnectionCaps(2, 1, [], CollectorRegistry())
    lease = caps.acquire(_request())
    with pytest.raises(ApiError) as refused:
        caps.acquire(_request())
    assert refused.value.status == 429 and refused.value.code == "TOO_MANY_CONNECTIONS_PER_IP"
    assert refused.value.headers == {"Retry-After": "5"}
    lease.release()
    lease.release()  # a second release gives nothing back twice
    assert caps.open == 0 and caps.by_address == {}
    assert caps.snapshot()["refused"] == {"node": 0, "address": 1}
    off = ConnectionCaps(0, 0, [], CollectorRegistry())  # 0 = no cap
    assert [off.acquire(_request()) for _ in range(50)] and off.open == 50


def test_a_request_without_caps_claims_an_empty_lease() -> None:
    lease = claim(_request())
    lease.release()
    assert lease.claimed is False


def test_which_requests_open_a_socket() -> None:
    assert opens_socket(_request("/ws"))
    assert opens_socket(_request("/api/v1/ws/editing/es_0123456789"))
    assert opens_socket(_request("/socket.io/?EIO=4&transport=polling"))
    assert not opens_socket(_request("/socket.io/?EIO=4&transport=polling&sid=abc"))
    assert not opens_socket(_request("/socket.io/?EIO=4", method="OPTIONS"))
    assert not opens_socket(_request("/api/workstations"))


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="trusted_proxies: 'nope'"):
        parse_networks(["10.0.0.0/8", "nope"])
    with pytest.raises(ValueError, match="max_connections"):
        load_settings(environ={"TIDINGS_MAX_CONNECTIONS": "-1"})
    settings = load_settings(environ={"TIDINGS_CORS_ORIGINS": "http://a:5173, http://b",
                                      "TIDINGS_TRUSTED_PROXIES": "10.0.0.1,::1",
                                      "TIDINGS_MAX_CONNECTIONS_PER_IP": "10"})
    assert settings.cors_origins == ["http://a:5173", "http://b"]
    assert settings.trusted_proxies == ["10.0.0.1", "::1"]
    assert settings.max_connections_per_ip == 10 and settings.max_connections == 100_000


def test_one_origin_rule_ignores_case_and_trailing_slash() -> None:
    listed = ["https://App.Example/"]
    assert origin_allowed("https://app.example", "node:8443", listed)
    assert not origin_allowed("https://evil.example", "node:8443", listed)
    assert origin_allowed(None, "node:8443", [])
    assert origin_allowed("http://NODE:8443", "node:8443", [])
    assert origin_listed("https://anything", ["*"])
