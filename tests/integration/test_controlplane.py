"""The local environment itself: a real API server with RBAC and token users, a real Prometheus
that scrapes registered targets, and backfilled history that queries like production data."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kubectl_util import kubectl
from launchgate_dev import devenv

T = TypeVar("T")


def poll(fn: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.25) -> T:
    """Return fn()'s first truthy result; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def test_admin_lists_namespaces(kubeconfig: Path) -> None:
    names = kubectl(kubeconfig, "get", "namespaces", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(names)


def test_token_users_have_their_groups(kubeconfig: Path) -> None:
    review = json.loads(kubectl(kubeconfig, "auth", "whoami", "-o", "json", user="alice").stdout)
    info = review["status"]["userInfo"]
    assert info["username"] == "alice"
    assert "reliability-reviewers" in info["groups"]
    mallory = json.loads(kubectl(kubeconfig, "auth", "whoami", "-o", "json", user="mallory").stdout)
    assert mallory["status"]["userInfo"]["groups"] == ["system:authenticated"]


def test_rbac_forbids_mallory_from_secrets(kubeconfig: Path) -> None:
    denied = kubectl(kubeconfig, "get", "secrets", "-n", "default", user="mallory", check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert kubectl(kubeconfig, "auth", "can-i", "list", "secrets", user="admin").stdout.strip() == "yes"


def test_gateway_api_crds_installed(kubeconfig: Path) -> None:
    crds = kubectl(kubeconfig, "get", "crd", "-o", "name").stdout
    assert "httproutes.gateway.networking.k8s.io" in crds


@pytest.fixture
def metrics_endpoint() -> Iterator[tuple[str, str]]:
    """A tiny exporter on a free loopback port: (address, metric name unique to this test)."""
    metric = f"launchgate_devenv_probe_{uuid.uuid4().hex[:8]}"
    body = f"# TYPE {metric} gauge\n{metric}{{case=\"scrape\"}} 42\n".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", metric
    finally:
        server.shutdown()
        server.server_close()


def test_registered_target_is_scraped(prometheus: devenv.PrometheusServer, metrics_endpoint: tuple[str, str]) -> None:
    address, metric = metrics_endpoint
    prometheus.add_target(metric, address, labels={"suite": "devenv"})
    try:
        result = poll(lambda: prometheus.query(metric))
        assert result[0]["metric"]["suite"] == "devenv"
        assert result[0]["metric"]["case"] == "scrape"
        assert result[0]["value"][1] == "42"
    finally:
        prometheus.remove_target(metric)


def test_backfilled_history_is_queryable(devenv_binaries: devenv.Binaries, tmp_path: Path) -> None:
    now = time.time()
    start = int(now - 5 * 3600)
    lines = ["# TYPE launchgate_backfill_probe gauge"]
    lines += [f'launchgate_backfill_probe{{case="backfill"}} 7 {ts}' for ts in range(start, start + 3600, 60)]
    data = devenv.backfill("\n".join(lines) + "\n# EOF\n", tmp_path / "data", bins=devenv_binaries)
    assert any(p.is_dir() and (p / "meta.json").exists() for p in data.iterdir())

    with devenv.PrometheusServer(tmp_path / "prom", data_dir=data, bins=devenv_binaries) as prom:
        result = prom.query("launchgate_backfill_probe", at=now - 4.5 * 3600)
        assert [r["value"][1] for r in result] == ["7"]
        assert prom.query("launchgate_backfill_probe", at=now) == []
