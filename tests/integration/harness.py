"""Given/When/Then building blocks for end-to-end tests against the real control plane.

The operator runs as a real subprocess (so SIGKILL is a real crash), under the least-privilege
RBAC from manifests/, watching only the test's namespace, with intervals of a second set through
its environment. Agents are real processes exporting per-version metrics that Prometheus scrapes.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from kubectl_util import kubectl, kubectl_json
from launchgate_dev.devenv import UNREADY
from launchgate_dev.synthetic import SyntheticAgent

ROOT = Path(__file__).resolve().parents[2]
GROUP = "launchgate.dev/v1alpha1"

# The queries the end-to-end tests gate on, over the synthetic agents' per-version metrics.
SUCCESS = ('sum(rate(agent_jobs_total{namespace="$namespace",version="$canary",outcome="success"}[$window]))'
           ' / sum(rate(agent_jobs_total{namespace="$namespace",version="$canary"}[$window]))')
P95 = ('1000 * histogram_quantile(0.95, sum by (le) '
       '(rate(agent_job_seconds_bucket{namespace="$namespace",version="$version"}[$window])))')
ERROR_RATE = ('sum(rate(agent_jobs_total{namespace="$namespace",version="$version",outcome!="success"}[5s]))'
              ' / sum(rate(agent_jobs_total{namespace="$namespace",version="$version"}[5s]))')
CANARY1_BLOCKERS = [
    {"name": "workflow_success_rate", "query": SUCCESS, "target": {"gte": 0.99}, "owner": "reliability"},
    {"name": "p95_latency_ms", "query": P95, "target": {"lteBaselineRatio": 1.2}},
]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    """Poll until `check` returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as e:  # a kubectl hiccup is retried like a falsy value
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    """A real HTTP endpoint on loopback that records what the operator's notifier posts."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TcpProxy:
    """Forwards TCP connections to one address (the API server: TLS passes through untouched).
    `cut()` closes every open connection and refuses new ones, which is what a client sees of an
    API server that is down; `restore()` listens again on the same port."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host.strip("[]"), int(port))
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listening: threading.Event | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restore(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listening = up = threading.Event()
        up.set()
        threading.Thread(target=self._accept, args=(listener, up), daemon=True).start()
        return self

    def cut(self) -> None:
        if self._listening is not None:
            self._listening.clear()
        with self._lock:
            conns, self._open = self._open, set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, listener: socket.socket, up: threading.Event) -> None:
        with listener:
            while up.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                with self._lock:
                    self._open.update((client, upstream))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for c in (src, dst):
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


def operator_kubeconfig(kubeconfig: Path, workdir: Path, server: str | None = None) -> Path:
    """A kubeconfig whose current user is the operator's own, bound to manifests/ RBAC; `server`
    (host:port) replaces the API server's address, e.g. with a TcpProxy's."""
    rbac = yaml.safe_load_all((ROOT / "manifests" / "base" / "rbac.yaml").read_text())
    for doc in rbac:
        if doc["kind"] == "ClusterRoleBinding":
            doc["subjects"] = [{"kind": "User", "name": "launchgate-operator",
                                "apiGroup": "rbac.authorization.k8s.io"}]
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(doc))
    path = workdir / "operator.kubeconfig"
    config = yaml.safe_load(kubeconfig.read_text())
    if server is not None:
        for c in config["clusters"]:
            c["cluster"]["server"] = f"https://{server}"
    path.write_text(yaml.safe_dump(config))
    kubectl(path, "config", "use-context", "launchgate-operator")
    return path


def kustomize_with_retention(kubeconfig: Path, workdir: Path) -> list[dict[str, Any]]:
    """manifests/ with the manifests/retention component, rendered as a user's overlay includes them."""
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
         "resources": [os.path.relpath(ROOT / "manifests", workdir)],
         "components": [os.path.relpath(ROOT / "manifests" / "retention", workdir)]}))
    return [d for d in yaml.safe_load_all(kubectl(kubeconfig, "kustomize", str(workdir)).stdout) if d]


class Operator:
    """The operator as a process: start, SIGKILL, restart."""

    def __init__(self, kubeconfig: Path, prometheus_url: str, namespace: str, workdir: Path,
                 **env: str) -> None:
        self.kubeconfig, self.prometheus_url, self.namespace = kubeconfig, prometheus_url, namespace
        self.workdir = workdir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.metrics_port = free_port()

    @property
    def log(self) -> Path:
        return self.workdir / f"operator-{self.namespace}.log"

    def start(self) -> Operator:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "LAUNCHGATE_PROMETHEUS_URL": self.prometheus_url,
               "LAUNCHGATE_GATE_INTERVAL": "1s", "LAUNCHGATE_PROMETHEUS_TIMEOUT": "3",
               "LAUNCHGATE_METRICS_PORT": str(self.metrics_port), "LAUNCHGATE_METRICS_ADDR": "127.0.0.1", **self.env}
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "launchgate.controller.main", "-n", self.namespace],
                                     stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown, as in a node failure."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"operator died:\n{self.tail()}"

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""


class World:
    """One namespace with its operator, gates, agents and rollouts."""

    def __init__(self, kubeconfig: Path, prometheus: Any, namespace: str, workdir: Path) -> None:
        self.kubeconfig, self.prometheus, self.ns, self.workdir = kubeconfig, prometheus, namespace, workdir
        self.agents: dict[str, SyntheticAgent] = {}
        kubectl(kubeconfig, "create", "namespace", namespace)
        self.operator: Operator | None = None

    # ---------------------------------------------------------------- given
    def start_operator(self, prometheus_url: str | None = None, server: str | None = None, **env: str) -> Operator:
        kc = operator_kubeconfig(self.kubeconfig, self.workdir, server)
        self.operator = Operator(kc, prometheus_url or self.prometheus.url, self.ns, self.workdir, **env).start()
        return self.operator

    def apply(self, obj: dict[str, Any]) -> None:
        obj.setdefault("metadata", {})["namespace"] = self.ns
        kubectl(self.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(obj))

    def gate(self, name: str, blockers: list[dict[str, Any]], window: str = "5s") -> None:
        self.apply({"apiVersion": GROUP, "kind": "LaunchGate", "metadata": {"name": name},
                    "spec": {"window": window, "owners": {"reliability": "sre-oncall"}, "blockers": blockers}})

    def http_route(self, name: str) -> None:
        self.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
                    "spec": {"rules": [{"backendRefs": [{"name": f"{name}-stable", "port": 80}]}]}})

    def agent(self, version: str, **rates: Any) -> SyntheticAgent:
        """A real agent process for `version`, scraped by Prometheus."""
        a = SyntheticAgent(version=version, namespace=self.ns, **rates).start()
        self.agents[version] = a
        self.prometheus.add_target(f"{self.ns}-{version}", a.address)
        return a

    # ---------------------------------------------------------------- observe
    def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict(kubectl_json(self.kubeconfig, "get", kind, name, "-n", self.ns))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get("agentrollout", name).get("status") or {})

    def route_weights(self, name: str) -> tuple[int | None, int | None]:
        refs = self.get("httproute", name)["spec"]["rules"][0]["backendRefs"]
        w = {r["name"]: r.get("weight") for r in refs}
        return w.get(f"{name}-stable"), w.get(f"{name}-canary")

    def replicas(self, deployment: str) -> int | None:
        proc = kubectl(self.kubeconfig, "get", "deployment", deployment, "-n", self.ns, "-o",
                       "jsonpath={.spec.replicas}", check=False)
        return int(proc.stdout) if proc.returncode == 0 and proc.stdout else None

    def pods_come_up(self, deployment: str, timeout: float = 60.0) -> int:
        """The readiness probes of the Deployment's pods start passing: the test takes the
        UNREADY annotation off each of its pods (kwok's pod-ready stage then marks them ready,
        see hack/testenv/kwok/pod-stages.yaml), pods created meanwhile included, until the real
        Deployment controller reports the Deployment rolled out. Only while its spec stays the
        same: a Deployment the operator scales or changes meanwhile keeps its new pods unready.
        Returns the replicas it rolled out with."""
        dep = wait_for(f"Deployment {deployment}", lambda: self._deployment(deployment), timeout=15)
        generation, selector = dep["metadata"]["generation"], dep["spec"]["selector"]["matchLabels"]
        labels = ",".join(f"{k}={v}" for k, v in selector.items())

        def rolled_out() -> dict[str, Any] | None:
            pods = kubectl_json(self.kubeconfig, "get", "pods", "-n", self.ns, "-l", labels)["items"]
            held = [p["metadata"]["name"] for p in pods if UNREADY in (p["metadata"].get("annotations") or {})
                    and not p["metadata"].get("deletionTimestamp")]
            if held:
                kubectl(self.kubeconfig, "annotate", "pods", "-n", self.ns, *held, f"{UNREADY}-", check=False)
            now = self._deployment(deployment) or {}
            if now.get("metadata", {}).get("generation") != generation:
                return now
            return now if _rolled_out(now) else None

        done = wait_for(f"the pods of {deployment} to come up", rolled_out, timeout=timeout, every=0.2)
        return int(done["spec"].get("replicas") or 0)

    def _deployment(self, name: str) -> dict[str, Any] | None:
        proc = kubectl(self.kubeconfig, "get", "deployment", name, "-n", self.ns, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def records(self, rollout: str) -> list[dict[str, Any]]:
        items = kubectl_json(self.kubeconfig, "get", "decisionrecords", "-n", self.ns, "-l",
                             f"launchgate.dev/rollout={rollout}")["items"]
        return sorted((i["spec"] for i in items), key=lambda s: (s["at"], s["id"]))

    def wait_status(self, name: str, what: str, pred: Callable[[dict[str, Any]], bool],
                    timeout: float = 90.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if self.operator is not None:
                self.operator.assert_alive()
            st = self.status(name)
            return st if pred(st) else None
        try:
            return dict(wait_for(what, check, timeout))
        except AssertionError as e:
            tail = self.operator.tail() if self.operator else ""
            raise AssertionError(f"{e}\nstatus: {json.dumps(self.status(name), indent=1)[:3000]}\n"
                                 f"operator log:\n{tail}") from None

    def close(self) -> None:
        if self.operator:
            self.operator.stop()
        for v, a in self.agents.items():
            self.prometheus.remove_target(f"{self.ns}-{v}")
            a.stop()
        kubectl(self.kubeconfig, "delete", "namespace", self.ns, "--wait=false", check=False)


def _rolled_out(dep: dict[str, Any]) -> bool:
    """What `kubectl rollout status` waits for, from what the Deployment controller wrote."""
    meta, st = dep["metadata"], dep.get("status") or {}
    want = int(dep["spec"].get("replicas") or 0)
    return ((st.get("observedGeneration") or 0) >= meta["generation"] and (st.get("updatedReplicas") or 0) >= want
            and (st.get("replicas") or 0) <= (st.get("updatedReplicas") or 0)
            and (st.get("availableReplicas") or 0) >= want)


def rollout_obj(name: str, image: str, phases: list[dict[str, Any]], router: dict[str, Any] | None = None,
                replicas: int = 4, pod_annotations: dict[str, str] | None = None,
                pod_spec: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """`pod_annotations` on the pod template tell kwok how its pods behave (devenv.UNREADY,
    READY_AFTER...); `pod_spec` adds to the pod spec (a nodeSelector no Node satisfies...)."""
    meta: dict[str, Any] = {"labels": {"app": name}}
    if pod_annotations:
        meta["annotations"] = dict(pod_annotations)
    return {
        "apiVersion": GROUP,
        "kind": "AgentRollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "interval": "1s",
            "template": {"metadata": meta,
                         "spec": {"containers": [{"name": "agent", "image": image,
                                                  "ports": [{"name": "http", "containerPort": 8080}]}],
                                  **(pod_spec or {})}},
            "trafficRouting": router or {"gatewayAPI": {"httpRoute": name}},
            "phases": phases,
            **spec,
        },
    }
