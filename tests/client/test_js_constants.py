"""The JavaScript client's wire constants are those of the Python package that owns the
protocol (tidings_client.protocol.codes): every type code the JS client names, and every
close code both name, have the same number."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tidings_client.protocol.codes import CloseCode, MsgType

ROOT = Path(__file__).resolve().parents[2]
JS_PROTOCOL = ROOT / "clients" / "js" / "src" / "tidings-protocol.js"


def _js_constants() -> dict[str, dict[str, int]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: scripts/test-deps installs it")
    script = (f"const m = await import({json.dumps(JS_PROTOCOL.as_uri())});"
              "console.log(JSON.stringify({types: m.MsgType, closes: m.CloseCode}));")
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                         text=True, timeout=60, check=True)
    result: dict[str, dict[str, int]] = json.loads(out.stdout)
    return result


def test_js_type_and_close_codes_match_the_python_protocol() -> None:
    js = _js_constants()
    assert js["types"] == {t.name: t.value for t in MsgType}
    shared = {name: code for name, code in js["closes"].items() if name in CloseCode.__members__}
    assert shared == {c.name: c.value for c in CloseCode}  # every Python close code, in JS
    # The JS-only ones: 1006 (reported, never sent) and its own ping-timeout close.
    assert set(js["closes"]) - set(shared) == {"ABNORMAL", "PING_TIMEOUT"}
