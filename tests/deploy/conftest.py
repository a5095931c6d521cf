"""Fixtures of the deployment tests: a private Docker engine, the images built once per
run, and helpers to make users and wait for nodes over HTTP (as a new user would)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.chaos.traffic import Account
from tests.deploy.engine import (
    BASE_IMAGE,
    REPO,
    STAND_INS,
    TIDINGS_IMAGE,
    Engine,
    EngineUnavailable,
    extra_ca_certs,
)

IMAGES = REPO / "tests" / "deploy" / "images"
MEASURED: dict[str, str] = {}  # printed at the end of the run (docs/deployment.md quotes it)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """dockerd for this run; the deployment tests skip, saying why, where it cannot start."""
    started = time.monotonic()
    eng = Engine()
    try:
        eng.start()
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine on this machine: {exc}")
    MEASURED["dockerd start"] = f"{time.monotonic() - started:.1f} s"
    try:
        yield eng
    finally:
        eng.stop()


@pytest.fixture(scope="session")
def tidings_image(engine: Engine) -> str:
    """The Dockerfile built from this tree on the local Debian base (ARG BASE)."""
    base = engine.base_image()
    if "base image" in engine.timings:
        MEASURED["base image (debootstrap + import)"] = f"{engine.timings['base image']:.0f} s"
    took = engine.build(TIDINGS_IMAGE, REPO / "Dockerfile", REPO, BASE=base,
                        EXTRA_CA_CERTS=extra_ca_certs())
    MEASURED["tidings image build"] = f"{took:.1f} s"
    size = engine.image_size(TIDINGS_IMAGE)
    added = size - engine.image_size(BASE_IMAGE)
    MEASURED["tidings image size"] = (f"{size / 1e6:.0f} MB ({added / 1e6:.0f} MB over the "
                                      f"{(size - added) / 1e6:.0f} MB base)")
    return TIDINGS_IMAGE


@pytest.fixture(scope="session")
def stand_in_images(engine: Engine) -> dict[str, str]:
    """PostgreSQL, Redis and nginx images from Debian's packages (the official images
    cannot be pulled here)."""
    base = engine.base_image()
    for name, tag in STAND_INS.items():
        took = engine.build(tag, IMAGES / f"{name}.Dockerfile", IMAGES, BASE=base)
        MEASURED[f"{name} stand-in build"] = f"{took:.1f} s"
    return dict(STAND_INS)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the run measured: build times and the image size."""
    if MEASURED:
        terminalreporter.section("deployment figures")
        for key, value in MEASURED.items():
            terminalreporter.write_line(f"{key}: {value}")


async def wait_healthy(http: aiohttp.ClientSession, base: str, timeout: float = 90.0,
                       what: str = "node") -> dict[str, Any]:
    """Poll ``base``/api/health until it answers 200; its body."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{base}/api/health",
                                timeout=aiohttp.ClientTimeout(total=5)) as r:
                if r.status == 200:
                    return dict(await r.json())
                last = (r.status, await r.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            last = exc
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what} at {base} not healthy after {timeout}s: {last!r}")


async def register(http: aiohttp.ClientSession, base: str, count: int) -> list[Account]:
    """``count`` new users with tokens, over HTTP (``/api/v1/auth/register`` + login)."""
    accounts = []
    for _ in range(count):
        body = {"username": f"dep{secrets.token_hex(5)}", "password": "correct horse"}
        async with http.post(f"{base}/api/v1/auth/register", json=body) as r:
            assert r.status == 201, await r.text()
        async with http.post(f"{base}/api/v1/auth/login", json=body) as r:
            assert r.status == 200, await r.text()
            data = await r.json()
        accounts.append(Account(int(data["user_id"]), str(data["token"])))
    return accounts
