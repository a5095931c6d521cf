"""Transport security: TLS from configured PEM files, security headers on every HTTP
response, and a log filter that keeps credentials out of the logs.

See docs/security.md for the threat model and what each measure defends.
"""

from __future__ import annotations

import logging
import re
import ssl

from aiohttp import web

from tidings.config import Settings

# Every response: never sniff a type, never be framed, never leak the URL onward.
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# HTML pages: scripts and other resources from this origin only; the page may open
# WebSockets to it. A handler that sets its own Content-Security-Policy keeps it.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# With TLS: browsers must keep using HTTPS for this host for a year.
HSTS = "max-age=31536000"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from ``tls_cert_file``/``tls_key_file``, or None (plain).

    TLS 1.2 is the minimum. Raise ``ValueError`` if only one file is set, and
    ``OSError``/``ssl.SSLError`` if they cannot be read or do not match.
    """
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if not cert and not key:
        return None
    if not (cert and key):
        raise ValueError("tls_cert_file and tls_key_file must be set together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ValueError(f"cannot use TLS certificate {cert!r} with key {key!r}: "
                         f"{exc.reason or exc}") from None
    return context


def add_security_headers(app: web.Application, *, tls: bool) -> None:
    """Add the security headers to every response the app sends (errors included)."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if response.status == 101:  # a WebSocket upgrade: no document to protect, and
            return                  # a reconnect storm makes thousands of them a second
        headers = response.headers
        for name, value in BASE_HEADERS.items():
            headers.setdefault(name, value)
        if tls:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if response.content_type == "text/html":
            headers.setdefault("Content-Security-Policy", PAGE_CSP)
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")  # tokens, private history

    app.on_response_prepare.append(on_prepare)


# Opaque tokens, JWTs, Bearer credentials, and the password of a database URL.
_SECRETS = [
    (re.compile(r"tdg_[A-Za-z0-9_-]{20,}"), "tdg_[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"), "[redacted JWT]"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1[redacted]"),
    (re.compile(r"(?i)(\"?password\"?\s*[:=]\s*)(\"[^\"]*\"|\S+)"), r"\1[redacted]"),
    (re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
]


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """A handler filter: formats each record once, redacted, so that no credential a
    message or an exception happens to carry reaches the log (defence in depth: the
    code never logs one on purpose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message (and traceback text) by a redacted copy."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
