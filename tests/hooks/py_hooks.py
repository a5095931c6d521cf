"""A ``hooks_module`` for the tests: the same hook points as Python functions."""

from __future__ import annotations

import asyncio
from typing import Any


def connect(request: dict[str, Any]) -> dict[str, Any]:
    """Plain functions work too: refuse one device, greet the others."""
    if request["device_id"] == "refuse":
        return {"error": {"message": "not this device"}}
    return {"result": {"data": {"hello": request["user_id"]}}}


async def subscribe(request: dict[str, Any]) -> dict[str, Any]:
    if request["channel"] == "room:boom":
        raise RuntimeError("the hook itself failed")
    return {"result": {}}


async def publish(request: dict[str, Any]) -> dict[str, Any]:
    return {"result": {"data": {"wrapped": request["data"]}}}


async def rpc(request: dict[str, Any]) -> Any:
    if request["method"] == "slow":
        await asyncio.sleep(5)
    if request["method"] == "bad":
        return ["not", "an", "answer"]
    return {"result": {"data": request["method"].upper()}}
