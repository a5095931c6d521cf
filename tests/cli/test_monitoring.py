"""Metrics and monitoring: process and Python collectors, build info, connections per
transport, database waiters, the internal metrics port; deploy/monitoring checked by
``promtool`` and loaded into a real Prometheus that scrapes a real node."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.support.server import RunningServer
from tests.support.services import free_port
from tidings import __version__
from tidings.metrics import pool_waiting

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
BIN = Path(sys.executable).parent / "tidings"


def sample(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert found, f"no {name}{labels}"
    return float(found.group(1))


async def test_metrics_have_process_python_build_and_transport_series(tmp_path):
    server = await RunningServer(f"sqlite:///{tmp_path}/m.db").start()
    try:
        _, token = await server.new_user("alice")
        async with aiohttp.ClientSession() as http:
            async with http.get(server.http_url + "/metrics") as r:
                before = await r.text()
            async with http.ws_connect(server.ws_url) as ws:
                await ws.send_str(json.dumps({"type": 1, "seq": 1, "payload": {"token": token}}))
                await ws.receive(timeout=30)
                async with http.get(server.http_url + "/metrics") as r:
                    during = await r.text()
    finally:
        await server.stop()
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                 "process_open_fds", "python_gc_collections_total"):
        assert re.search(rf"^{name}(\{{[^}}]*\}})? \S+$", before, re.M), name
    assert re.search(r'^python_info\{.*version="3\.\d+\.\d+"\} 1\.0$', before, re.M)
    assert sample(before, "tidings_build_info",
                  f'{{python="{sys.version.split()[0]}",version="{__version__}"}}') == 1.0
    ws = '{transport="ws"}'
    assert sample(before, "tidings_transport_connections", ws) == 0.0
    assert sample(during, "tidings_transport_connections", ws) == 1.0
    assert sample(during, "tidings_transport_connections", '{transport="socketio"}') == 0.0
    assert sample(during, "tidings_transport_connections", '{transport="editing"}') == 0.0


async def test_the_internal_metrics_port_serves_metrics_alone(tmp_path):
    port = free_port()
    server = await RunningServer(f"sqlite:///{tmp_path}/m.db", metrics_port=port).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                assert "tidings_build_info" in await r.text()
            async with http.get(f"http://127.0.0.1:{port}/api/health") as r:
                assert r.status == 404
    finally:
        await server.stop()
    with pytest.raises(OSError):  # closed with the node
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


async def test_pool_waiting_counts_requests_queued_for_a_connection(postgres_server):
    pool = await asyncpg.create_pool(postgres_server.url, min_size=1, max_size=1)

    async def take() -> asyncpg.Connection:
        return await pool.acquire()

    try:
        held = await pool.acquire()
        assert pool_waiting(pool) == 0
        waiters = [asyncio.create_task(take()) for _ in range(3)]
        deadline = time.monotonic() + 10
        while pool_waiting(pool) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert pool_waiting(pool) == 3
        await pool.release(held)
        for waiter in waiters:
            await pool.release(await waiter)
        assert pool_waiting(pool) == 0
    finally:
        pool.terminate()
    assert pool_waiting(None) == 0


def promtool(*args: str, cwd: Path = MONITORING) -> str:
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120,
                            cwd=cwd, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_promtool_accepts_the_rules_and_the_config():
    assert "SUCCESS: 12 rules found" in promtool("check", "rules", "alerts.yml")
    assert "is valid prometheus config file syntax" in promtool("check", "config",
                                                                "prometheus.yml")


def test_each_alert_fires_above_its_threshold_and_not_at_it():
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def test_the_thresholds_are_seed_000s():
    text = (MONITORING / "alerts.yml").read_text()
    thresholds = dict(re.findall(r"- record: (tidings:threshold:\w+)\n\s+expr: (\S+)", text))
    assert thresholds == {
        "tidings:threshold:websocket_connections": "vector(800)",
        "tidings:threshold:db_waiting_clients": "vector(10)",
        "tidings:threshold:failure_ratio_notice": "vector(0.02)",
        "tidings:threshold:failure_ratio_warning": "vector(0.05)",
        "tidings:threshold:failure_ratio_critical": "vector(0.10)",
    }


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def api(base: str, path: str, **params: str):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else base + path
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


@pytest.mark.slow
def test_a_real_prometheus_scrapes_a_node_and_loads_the_rules(tmp_path):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing: run scripts/test-deps")
    metrics_port, prom_port = free_port(), free_port()
    # The shipped rules, with the WebSocket threshold at 0 and no wait, so that one
    # connection makes that alert fire; the rest as shipped.
    rules = (MONITORING / "alerts.yml").read_text()
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "alerts-now.yml").write_text(
        rules.replace("vector(800)", "vector(0)").replace("for: 5m", "for: 0s")
        .replace("name: tidings-", "name: now-").replace("tidings:", "now:"))
    # The shipped scrape job, faster and aimed at the node (JSON is YAML).
    shipped = (MONITORING / "prometheus.yml").read_text()
    assert "job_name: tidings" in shipped and "metrics_path: /metrics" in shipped
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(tmp_path / "alerts.yml"), str(tmp_path / "alerts-now.yml")],
              "scrape_configs": [{"job_name": "tidings", "metrics_path": "/metrics",
                                  "static_configs": [
                                      {"targets": [f"127.0.0.1:{metrics_port}"]}]}]}
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    promtool("check", "config", str(tmp_path / "prometheus.yml"), cwd=tmp_path)

    node_log = (tmp_path / "node.log").open("wb")
    # --auth-timeout: the unauthenticated WebSocket below stays open while Prometheus,
    # on a busy machine, takes its time to scrape and evaluate.
    node = subprocess.Popen([str(BIN), "serve", "--port", "0", "--auth-timeout", "600",
                             "--metrics-port",
                             str(metrics_port), "--database-url", f"sqlite:///{tmp_path}/n.db"],
                            stdin=subprocess.DEVNULL, stdout=node_log, stderr=node_log,
                            cwd=tmp_path)
    prom_log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdin=subprocess.DEVNULL, stdout=prom_log, stderr=prom_log, cwd=tmp_path)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        url = wait_for(lambda: re.search(r"listening on (http://\S+)",
                                         (tmp_path / "node.log").read_text()).group(1),
                       60, "the node")

        def target_up() -> bool:
            targets = api(base, "/api/v1/targets")["activeTargets"]
            return any(t["health"] == "up" for t in targets)

        wait_for(target_up, 60, "Prometheus to scrape the node")
        build = wait_for(lambda: api(base, "/api/v1/query", query="tidings_build_info")[
            "result"], 30, "tidings_build_info in Prometheus")
        assert build[0]["metric"]["version"] == __version__
        assert build[0]["metric"]["job"] == "tidings"

        groups = api(base, "/api/v1/rules")["groups"]
        alerts = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
        assert {"TidingsHighWebSocketConnections", "TidingsHighDbWaitingClients",
                "TidingsFailureRateNotice", "TidingsFailureRateWarning",
                "TidingsFailureRateCritical", "TidingsNodeDown"} <= alerts
        assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups

        # Every dashboard query is valid PromQL against the real series.
        for query in dashboard_queries():
            api(base, "/api/v1/query", query=query.replace("$instance", ".*"))
        with urllib.request.urlopen(url + "/api/health", timeout=10) as response:
            assert response.status == 200  # counted in tidings_http_requests_total
        for series in ("process_resident_memory_bytes", "python_gc_collections_total",
                       'tidings_transport_connections{transport="ws"}',
                       "tidings_http_requests_total"):
            wait_for(lambda s=series: api(base, "/api/v1/query", query=s)["result"], 30, series)

        # One WebSocket connection against a threshold of 0: the alert fires.
        async def hold_a_connection() -> list[str]:
            async with aiohttp.ClientSession() as http, \
                    http.ws_connect(url.replace("http", "ws") + "/ws"):
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    firing = [a["labels"]["alertname"]
                              for a in api(base, "/api/v1/alerts")["alerts"]
                              if a["state"] == "firing"]
                    if "TidingsHighWebSocketConnections" in firing:
                        return firing
                    await asyncio.sleep(0.5)
                return []

        firing = asyncio.run(hold_a_connection())
        assert "TidingsHighWebSocketConnections" in firing
        assert "TidingsNodeDown" not in firing
        groups = api(base, "/api/v1/rules")["groups"]
        assert [r for g in groups for r in g["rules"] if r["health"] == "err"] == []
    finally:
        for proc in (prometheus, node):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        node_log.close()
        prom_log.close()
