"""Transport security on a real node: HTTPS and wss:// with a certificate from the
settings (a self-signed one made here), security headers on every response, and the
Origin allow-list over TLS."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tidings.client import AiohttpTransport, Client
from tidings.config import Settings
from tidings.security import HSTS, PAGE_CSP
from tidings.server import Server


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tidings test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
async def tls_node(tmp_path):
    cert, key = make_certificate(tmp_path)
    node = Server(Settings(port=0, database_url=f"sqlite:///{tmp_path / 'tls.db'}",
                           tls_cert_file=str(cert), tls_key_file=str(key),
                           allowed_origins=["https://Chat.Example.com/"]))
    await node.start()
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        yield node, trusting
    finally:
        await node.stop()


async def _user(node: Server) -> tuple[int, str]:
    user = await node.store.create_user(f"tls{secrets.token_hex(6)}", "!no-password")
    token, _ = await node.service.auth.issue(user.id)
    return user.id, token


async def test_https_serves_the_api_with_hsts_and_refuses_plain_http(tls_node):
    node, trusting = tls_node
    assert node.url.startswith("https://127.0.0.1:")
    async with aiohttp.ClientSession() as http:
        async with http.get(node.url + "/api/health", ssl=trusting) as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
            assert r.headers["Strict-Transport-Security"] == HSTS
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        with pytest.raises(aiohttp.ClientError):  # no plaintext on the TLS port
            async with http.get(node.url.replace("https", "http") + "/api/health") as r:
                await r.read()


async def test_a_client_that_does_not_trust_the_certificate_cannot_connect(tls_node):
    node, _ = tls_node
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(node.url + "/api/health") as r:  # system CAs only
                await r.read()


async def test_the_sdk_chats_over_wss(tls_node):
    node, trusting = tls_node
    ws_url = node.url.replace("https://", "wss://") + "/ws"
    (alice, alice_token), (bob, bob_token) = await _user(node), await _user(node)

    async def connector(url: str) -> AiohttpTransport:
        return await AiohttpTransport.connect(url, ssl=trusting)

    async with Client(ws_url, alice_token, connector=connector) as a, \
            Client(ws_url, bob_token, connector=connector) as b:
        ack = await a.send_chat(to=bob, content="over TLS")
        async for event in b.events():
            if getattr(event, "message_id", None) == ack.message_id:
                assert event.content == "over TLS" and event.from_ == alice
                break


@pytest.mark.parametrize("origin,allowed", [
    ("https://chat.example.com", True),  # listed as https://Chat.Example.com/
    ("https://CHAT.example.com", True),
    ("https://evil.example.com", False),
    ("http://chat.example.com", False),  # another scheme is another origin
    (None, True),  # not a browser
])
async def test_origin_allow_list_over_tls(tls_node, origin, allowed):
    node, trusting = tls_node
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession() as http:
        if allowed:
            async with http.ws_connect(node.url + "/ws", ssl=trusting, headers=headers) as ws:
                assert not ws.closed
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(node.url + "/ws", ssl=trusting, headers=headers)
            assert refused.value.status == 403


async def test_the_own_host_is_an_allowed_origin_over_tls(tls_node):
    node, trusting = tls_node
    own = node.url  # https://127.0.0.1:PORT, as a page served by the node would send
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(node.url + "/ws", ssl=trusting, headers={"Origin": own}) as ws:
        assert not ws.closed


@pytest.mark.parametrize("cert,key,message", [
    ("cert", "", "must be set together"),
    ("", "key", "must be set together"),
    ("key", "key", "cannot use TLS certificate"),  # a key is not a certificate
])
def test_incomplete_or_wrong_tls_settings_stop_the_node_with_a_message(tmp_path, cert, key,
                                                                       message):
    cert_path, key_path = make_certificate(tmp_path)
    files = {"cert": str(cert_path), "key": str(key_path), "": ""}
    with pytest.raises(ValueError, match=message):
        Server(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}",
                        tls_cert_file=files[cert], tls_key_file=files[key]))


def test_a_missing_certificate_file_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        Server(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}",
                        tls_cert_file=str(tmp_path / "nope.pem"),
                        tls_key_file=str(tmp_path / "nope.key")))


# headers on plain HTTP


@pytest.fixture
async def plain_node(tmp_path):
    node = Server(Settings(port=0, database_url=f"sqlite:///{tmp_path / 'plain.db'}"))

    async def page(request):
        from aiohttp import web
        return web.Response(text="<!doctype html><p>hi</p>", content_type="text/html")

    async def own_policy(request):
        from aiohttp import web
        return web.Response(text="<p>mine</p>", content_type="text/html",
                            headers={"Content-Security-Policy": "default-src 'none'"})

    node.app.router.add_get("/test/page", page)
    node.app.router.add_get("/test/own-policy", own_policy)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def test_every_response_has_the_base_security_headers_and_api_is_not_cached(plain_node):
    async with aiohttp.ClientSession() as http:
        for path, status in (("/api/health", 200), ("/api/nope", 404), ("/metrics", 200),
                             ("/api/v1/messages?peer=1", 401)):
            async with http.get(plain_node.url + path) as r:
                assert r.status == status
                assert r.headers["X-Content-Type-Options"] == "nosniff", path
                assert r.headers["X-Frame-Options"] == "DENY", path
                assert r.headers["Referrer-Policy"] == "no-referrer", path
                assert "Strict-Transport-Security" not in r.headers  # plain HTTP: no HSTS
                assert ("Cache-Control" in r.headers) == path.startswith("/api/"), path
                if path.startswith("/api/"):
                    assert r.headers["Cache-Control"] == "no-store"


async def test_html_pages_get_a_content_security_policy_unless_they_set_their_own(plain_node):
    async with aiohttp.ClientSession() as http:
        async with http.get(plain_node.url + "/test/page") as r:
            assert r.headers["Content-Security-Policy"] == PAGE_CSP
            assert "frame-ancestors 'none'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
        async with http.get(plain_node.url + "/test/own-policy") as r:
            assert r.headers["Content-Security-Policy"] == "default-src 'none'"
        async with http.get(plain_node.url + "/api/health") as r:
            assert "Content-Security-Policy" not in r.headers  # JSON is no page
