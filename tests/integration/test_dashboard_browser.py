"""`kubectl launchgate dashboard` in a real browser: Debian's headless Chromium driven by
Playwright, against the real API server, operator and Prometheus.

The dashboard runs as the CLI runs it (a process started with a kubeconfig, printing its URL), once
as the admin and once as a ServiceAccount that RBAC lets read one namespace only. The pages are
looked at as a person would: rows in the overview, the phase changing without a reload after a
promotion, a plot with points, and nothing of a namespace the user may not read. Screenshots of
both pages go to .artifacts/dashboard/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import CANARY1_BLOCKERS, ROOT, World, rollout_obj, wait_for
from kubectl_util import kubectl, kubectl_json

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download cannot work here: it drives Debian's chromium, told not to
# reach for any outside host.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-dev-shm-usage"]
ARTIFACTS = ROOT / ".artifacts" / "dashboard"

PHASES = [
    {"name": "ReplayGate", "weight": 0, "gates": ["canary1"]},
    # An hour's minimum duration holds the canary in Canary1 until the test promotes it.
    {"name": "Canary1", "weight": 5, "gates": ["canary1"], "minDuration": "1h"},
    {"name": "Canary2", "weight": 25, "gates": ["canary1"]},
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make testenv` installs Debian's chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def plugin_env() -> dict[str, str]:
    """kubectl finds the installed plugin (kubectl-launchgate) on PATH, beside this Python."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAUNCHGATE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return env


class Dashboard:
    """`kubectl-launchgate dashboard` as a process; `url` is the one it printed."""

    def __init__(self, kubeconfig: Path, prometheus_url: str, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            ["kubectl", "launchgate", "--kubeconfig", str(kubeconfig), "dashboard", "--port", "0",
             "--prometheus", prometheus_url],
            stdout=subprocess.PIPE, stderr=log.open("wb"), text=True, env=plugin_env(), start_new_session=True)
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        out = self.proc.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True).start()
        try:
            first = lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"the dashboard printed no URL; its log:\n{log.read_text()}") from None
        assert "http://127.0.0.1:" in first, first
        self.url = first[first.index("http://"):].split()[0].rstrip("/")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path) -> Iterator[World]:
    w = World(kubeconfig, prometheus, f"dash-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS)
    yield w
    w.close()


@pytest.fixture
def other_namespace(kubeconfig: Path) -> Iterator[str]:
    """A namespace with a rollout of its own, which the limited user may not read."""
    ns = f"dash-other-{random.randrange(10**6)}"
    kubectl(kubeconfig, "create", "namespace", ns)
    obj = rollout_obj("hidden", "agent:1", PHASES)
    obj["metadata"]["namespace"] = ns
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(obj))
    yield ns
    kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false", check=False)


def a_canary_held_in_canary1(w: World, name: str) -> str:
    """A stable revision, then a new one promoted out of ReplayGate by its gates into Canary1,
    where the minimum duration holds it."""
    w.http_route(name)
    w.apply(rollout_obj(name, "agent:1", PHASES))
    st = w.wait_status(name, "the first revision to become stable", lambda s: s.get("state") == "Healthy")
    w.agent(st["stableRevision"], success_rate=0.99, p95_ms=1000)
    kubectl(w.kubeconfig, "patch", "agentrollout", name, "-n", w.ns, "--type=merge", "-p",
            '{"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}}')
    st = w.wait_status(name, "the canary revision", lambda s: bool(s.get("canaryRevision")))
    rev2 = str(st["canaryRevision"])
    w.agent(rev2, success_rate=0.995, p95_ms=1050)
    w.pods_come_up(f"{name}-canary")
    w.wait_status(name, "the canary in Canary1", lambda s: s.get("phase") == "Canary1", timeout=120)
    return rev2


@contextlib.contextmanager
def limited_user(kubeconfig: Path, namespace: str, workdir: Path) -> Iterator[Path]:
    """A ServiceAccount's token as a kubeconfig user: the shipped launchgate-viewer role in
    `namespace` only, and the right to list namespaces (so the selector has something to filter)."""
    sa = "dashboard-viewer"
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "manifests" / "base" / "user-roles.yaml"))
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": namespace}
    list_ns = f"{namespace}-list-namespaces"
    objs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "dashboard-viewer", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "launchgate-viewer"},
         "subjects": [subject]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": list_ns},
         "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": list_ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": list_ns},
         "subjects": [subject]},
    ]
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(objs))
    token = kubectl(kubeconfig, "create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": sa, "user": {"token": token}}]
    config["contexts"] = [{"name": sa, "context": {"cluster": config["clusters"][0]["name"], "user": sa,
                                                   "namespace": namespace}}]
    config["current-context"] = sa
    path = workdir / "viewer.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    who = kubectl_json(path, "auth", "whoami")["status"]["userInfo"]["username"]
    assert who == f"system:serviceaccount:{namespace}:{sa}", who
    try:
        yield path
    finally:
        kubectl(kubeconfig, "delete", "clusterrolebinding,clusterrole", list_ns, check=False)


def rollout_rows(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("tr.rollout", "rows => rows.map(r => r.dataset.rollout)"))


def test_the_dashboard_shows_rollouts_live_plots_them_and_only_what_rbac_allows(
        world: World, other_namespace: str, browser: Any, tmp_path: Path) -> None:
    w = world
    w.start_operator()
    a_canary_held_in_canary1(w, "web")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The operator exports what the Grafana dashboard plots: each blocker's value and target.
    assert w.operator is not None
    operator = w.operator

    def exported(family: str) -> bool:
        return any(line.startswith(family + "{") and f'namespace="{w.ns}"' in line
                   and 'blocker="workflow_success_rate"' in line for line in operator.scrape().splitlines())

    for family in ("launchgate_blocker_value", "launchgate_blocker_target", "launchgate_blocker_pass"):
        wait_for(f"{family} of the canary's gate", lambda f=family: exported(f), timeout=15)

    admin = Dashboard(w.kubeconfig, w.prometheus.url, tmp_path / "dashboard-admin.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # The overview, all namespaces: the test's rollouts, with their phase.
        page.goto(admin.url + "/")
        page.wait_for_selector(f'tr.rollout[data-rollout="{w.ns}/web"][data-phase="Canary1"]')
        rows = rollout_rows(page)
        assert f"{w.ns}/web" in rows and f"{other_namespace}/hidden" in rows, rows
        page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

        # One rollout: its gate's contract, its timeline, and a plot with points from Prometheus.
        page.goto(f"{admin.url}/rollouts/{w.ns}/web")
        assert page.text_content("#phase") == "Canary1"
        assert page.locator('[data-gate="canary1"] tr[data-blocker="workflow_success_rate"]').count() == 1
        assert page.locator("#timeline tr.what-promote").count() >= 1
        page.wait_for_function(
            """() => { const p = document.querySelector('.plot[data-blocker="workflow_success_rate"]');
                       return p && Number(p.dataset.points) > 0 && p.querySelector('canvas'); }""", timeout=30_000)

        # A promotion shows without a reload: the page's own state survives, the phase changes.
        page.evaluate("window.__loadedOnce = true")
        subprocess.run(["kubectl", "launchgate", "--kubeconfig", str(w.kubeconfig), "promote", "web", "-n", w.ns],
                       env=plugin_env(), check=True, capture_output=True, timeout=60)
        page.wait_for_function("() => document.querySelector('#phase').textContent === 'Canary2'", timeout=60_000)
        assert page.evaluate("window.__loadedOnce") is True
        assert int(page.evaluate("document.body.dataset.updates")) >= 1
        assert page.get_attribute('[data-step="Canary1"]', "data-state") == "done"
        assert page.get_attribute('[data-step="Canary2"]', "data-state") == "current"
        page.wait_for_selector("#timeline tr.what-promote >> text=promotion forced by admin")
        page.screenshot(path=str(ARTIFACTS / "rollout.png"), full_page=True)
        page.close()
    finally:
        admin.stop()

    # A user whom RBAC lets read the test's namespace only sees nothing of the other one.
    with limited_user(w.kubeconfig, w.ns, tmp_path) as viewer_config:
        viewer = Dashboard(viewer_config, w.prometheus.url, tmp_path / "dashboard-viewer.log")
        try:
            page = browser.new_page()
            page.goto(viewer.url + "/")
            page.wait_for_selector(f'tr.rollout[data-rollout="{w.ns}/web"]')
            assert rollout_rows(page) == [f"{w.ns}/web"]
            options = page.eval_on_selector_all("#namespace option", "os => os.map(o => o.value)")
            assert w.ns in options and other_namespace not in options, options
            assert f"system:serviceaccount:{w.ns}:dashboard-viewer" in (page.text_content("header .who") or "")
            page.goto(f"{viewer.url}/rollouts/{other_namespace}/hidden")
            assert "forbidden" in (page.text_content("#rollout-error") or "")
            assert page.locator("#timeline").count() == 0
            page.close()
        finally:
            viewer.stop()
    w.operator.assert_alive()
