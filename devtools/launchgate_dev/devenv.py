"""A real, local Kubernetes cluster and Prometheus, without Docker.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with kwok playing the kubelet of
a few fake Nodes: Deployments get ReplicaSets and pods, pods are scheduled, start, become ready (or
not, as a test asks through the kwok stages) and get EndpointSlices, Jobs finish, and deleting an
owner garbage-collects what it owned. Only containers do not run: the agents a test needs are
local processes (launchgate_dev.synthetic).

Why this exists: launchgate's behaviour depends on the API server (CRD validation, RBAC, server-side
apply, watches), on the controllers that act on what it writes (a Deployment is available when the
Deployment controller says so) and on Prometheus (PromQL, staleness, NaN). Fakes of any would let
the tests pass against assumptions instead of the real thing, and kind/k3d need a container engine
we do not have. So we run the upstream binaries that ``hack/testenv/build.sh`` builds into a cache,
as plain child processes on loopback ports, and tear them down reliably.

Used by the integration-test fixtures (tests/integration/conftest.py), by ``make up`` / ``make down``
(``python -m launchgate_dev.devenv up|down``), by the demo and by the benchmarks.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import urllib3
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "hack" / "versions.env"
REPO_CRDS = REPO_ROOT / "crds"

#: Users of the token authenticator and their groups. ``admin`` is cluster-admin through
#: system:masters; the others have no permissions until a test binds RBAC to them, which is the
#: point: approval and separation-of-duty tests need distinct, real identities.
DEFAULT_USERS: dict[str, tuple[str, ...]] = {
    "admin": ("system:masters",),
    "launchgate-operator": (),
    "alice": ("reliability-reviewers",),
    "bob": ("reliability-reviewers",),
    "carol": ("ai-governance",),
    "mallory": (),
}

#: The kwok stages: how fake Nodes report Ready and how pods on them start, become ready (or not)
#: and finish. Project files, so a test's pods behave as the repo says, whatever the cache holds.
KWOK_STAGES = REPO_ROOT / "hack" / "testenv" / "kwok"

#: Pod annotations the kwok stages read (see hack/testenv/kwok/pod-stages.yaml): set on a pod
#: template, or on a live pod, they decide what its "kubelet" reports.
READY_AFTER = "devenv.launchgate.dev/ready-after"
"""Readiness passes this long after the pod starts (a duration such as ``8s``; default 0.5 s)."""
UNREADY = "devenv.launchgate.dev/unready"
"""``"true"``: readiness fails while it is set (never ready, or turns unready on a live pod)."""
EXIT_CODE = "devenv.launchgate.dev/exit-code"
"""A Job's pod exits with this code (default ``0``: Succeeded; any other: Failed)."""
RUN_FOR = "devenv.launchgate.dev/run-for"
"""A Job's pod runs this long once ready (default 1 s)."""

#: kwok plays the kubelet only for Nodes with this annotation, so no other Node is touched.
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
#: What each fake Node offers: a common 16-core VM with the kubelet's default limit of 110 pods,
#: so the scheduler places and refuses pods as it would on real ones.
NODE_CAPACITY = {"cpu": "16", "memory": "64Gi", "ephemeral-storage": "100Gi", "pods": "110"}
#: Where pod IPs come from: EndpointSlice validation refuses loopback addresses, and the range
#: stays clear of the Service range. Nothing connects to these addresses.
POD_CIDR = "10.64.0.0/10"
#: The fake Nodes' own addresses (InternalIP), one per Node from here on.
NODE_IP_BASE = ipaddress.ip_address("10.192.0.10")

#: The cluster's components and the users they run as. The scheduler and the controller-manager
#: use the names the API server's bootstrap RBAC grants their roles to (and the controller-manager
#: runs each controller under its own ServiceAccount, as kubeadm sets it up); kwok writes every
#: Node's and pod's status, a kubelet's rights over all Nodes, so it is an admin.
COMPONENT_USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kwok": ("kwok", ("system:masters",)),
}

MISSING_HINT = "run `make testenv` (bash hack/testenv/build.sh) to build/install the local control plane"


class DevEnvError(RuntimeError):
    """The local environment is missing something or a component failed to start."""


# --------------------------------------------------------------------------------------------
# Locating the binaries
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where build.sh puts binaries and ``make up`` its run dir; outside the repo so clones stay clean."""
    env = os.environ.get("LAUNCHGATE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "launchgate"


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse hack/versions.env (KEY=VALUE lines), the single source of pinned versions."""
    if not path.is_file():
        raise DevEnvError(f"{path} not found: devenv must run from a launchgate source checkout")
    versions: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        versions[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return versions


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of everything the environment runs, at the versions pinned in versions.env."""

    kube_apiserver: Path
    etcd: Path
    kubectl: Path
    prometheus: Path
    promtool: Path
    gateway_api_crds: Path
    versions: Mapping[str, str]
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kube_state_metrics: Path | None = None
    """None when `make testenv` has not built it yet: only the checklist's tests need it, and they
    fail with the hint (KubeStateMetrics.start) rather than every test of the suite."""


def binaries() -> Binaries:
    """Find the cached binaries; fail with a "run make testenv" message when any is missing.

    kubectl comes from the cache (built by build.sh at the cluster's version) and falls back to the
    one on PATH; Prometheus comes from PATH (Debian package).
    """
    v = read_versions()
    cache = cache_dir()
    try:
        k8s, etcd, gw = v["KUBERNETES_VERSION"], v["ETCD_VERSION"], v["GATEWAY_API_VERSION"]
        kwok = v["KWOK_VERSION"]
    except KeyError as e:
        raise DevEnvError(f"{VERSIONS_FILE} lacks {e.args[0]}") from None
    missing: list[str] = []

    def cached(rel: str) -> Path:
        p = cache / rel
        if not (p.is_file() and os.access(p, os.X_OK)):
            missing.append(str(p))
        return p

    def on_path(name: str, *fallbacks: Path) -> Path:
        for cand in fallbacks:
            if cand.is_file() and os.access(cand, os.X_OK):
                return cand
        found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
        if not found:
            missing.append(f"{name} (not on PATH)")
            return Path(name)
        return Path(found)

    apiserver = cached(f"kube-apiserver-{k8s}/kube-apiserver")
    etcd_bin = cached(f"etcd-{etcd}/etcd")
    controller_manager = cached(f"kube-controller-manager-{k8s}/kube-controller-manager")
    scheduler = cached(f"kube-scheduler-{k8s}/kube-scheduler")
    kwok_bin = cached(f"kwok-{kwok}/kwok")
    kubectl = on_path("kubectl", cache / f"kubectl-{k8s}" / "kubectl")
    prometheus = on_path("prometheus")
    promtool = on_path("promtool")
    crds = cache / f"gateway-api-{gw}"
    if not any(crds.glob("*.yaml")):
        missing.append(f"{crds}/*.yaml")
    if missing:
        raise DevEnvError("missing: " + ", ".join(missing) + f"\n{MISSING_HINT}")
    ksm_version = v.get("KUBE_STATE_METRICS_VERSION", "")
    ksm = cache / f"kube-state-metrics-{ksm_version}" / "kube-state-metrics"
    return Binaries(apiserver, etcd_bin, kubectl, prometheus, promtool, crds, v,
                    controller_manager, scheduler, kwok_bin,
                    ksm if ksm_version and ksm.is_file() and os.access(ksm, os.X_OK) else None)


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------


@dataclass
class _Child:
    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    pidfile: Path
    log: Path

    def record(self) -> dict[str, Any]:
        """What ``devenv down`` needs to find (and verify) the process later."""
        return {"name": self.name, "pid": self.popen.pid, "exe": self.argv[0]}


# Every child we started and have not stopped: the atexit hook stops them, so a crashed test run
# leaves no etcd/kube-apiserver/prometheus behind. Detached children (``devenv up``) are removed.
_LIVE: dict[int, _Child] = {}


def _exit_on_sigterm() -> None:
    """Turn a plain SIGTERM (e.g. a CI timeout killing pytest) into SystemExit, so finally blocks
    and the atexit hook still stop our children. Only when nobody installed a handler already."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def _handler(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, _handler)


def _spawn(name: str, argv: Sequence[str], workdir: Path) -> _Child:
    """Start argv in its own session (so signals to our terminal/process group don't hit it and we
    can kill its whole group), logging to ``<workdir>/<name>.log`` and recording ``<name>.pid``."""
    _exit_on_sigterm()
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=workdir,
        )
    pidfile = workdir / f"{name}.pid"
    pidfile.write_text(f"{popen.pid}\n")
    child = _Child(name, list(argv), popen, pidfile, log)
    _LIVE[popen.pid] = child
    return child


def _stop_child(child: _Child, timeout: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it if it has not exited within ``timeout``."""
    _LIVE.pop(child.popen.pid, None)
    if child.popen.poll() is None:
        _killpg(child.popen.pid, signal.SIGTERM)
        try:
            child.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(child.popen.pid, signal.SIGKILL)
            child.popen.wait(5)
    child.pidfile.unlink(missing_ok=True)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _stop_all_children() -> None:
    for child in reversed(list(_LIVE.values())):
        _stop_child(child, timeout=5)


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it; good enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = _free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _wait_http(child: _Child, url: str, *, timeout: float, ok: Any = None, **kwargs: Any) -> None:
    """Poll ``url`` until it answers 200 (and ``ok(response)`` if given); fail fast if the child dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with requests.Session() as session:
        while True:
            if child.popen.poll() is not None:
                raise DevEnvError(
                    f"{child.name} exited with {child.popen.returncode} during startup; log {child.log}:\n"
                    + _log_tail(child.log)
                )
            try:
                r = session.get(url, timeout=2, **kwargs)
                if r.status_code == 200 and (ok is None or ok(r)):
                    return
                last = f"HTTP {r.status_code}: {r.text[:300]}"
            except requests.RequestException as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise DevEnvError(
                    f"{child.name} not ready at {url} after {timeout:.0f}s ({last}); log {child.log}:\n"
                    + _log_tail(child.log)
                )
            time.sleep(0.1)


def _ec_private_key_pem() -> str:
    """A fresh P-256 key as SEC1 PEM, made with the stdlib only.

    The API server needs a service-account signing key. An EC key is just a random scalar below
    the curve order; Go derives the public point itself when it parses the key, so no big-number
    arithmetic (and no `cryptography`/`openssl` dependency) is needed here.
    """
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    d = (secrets.randbelow(order - 1) + 1).to_bytes(32, "big")
    prime256v1 = bytes.fromhex("06082a8648ce3d030107")
    body = b"\x02\x01\x01" + b"\x04\x20" + d + b"\xa0" + bytes([len(prime256v1)]) + prime256v1
    der = b"\x30" + bytes([len(body)]) + body
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN EC PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END EC PRIVATE KEY-----\n"


def _yaml_files(paths: Iterable[Path | str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise DevEnvError(f"{p}: no such file or directory")
    return files


def _token_line(token: str, user: str, groups: Sequence[str]) -> str:
    """A line of the API server's token file: token,user,uid[,"group1,group2"]. No 4th column for
    users without groups, or the API server would give them a group named ""."""
    return f"{token},{user},{user}" + (f',"{",".join(groups)}"' if groups else "") + "\n"


def _component_flags(kubeconfig: Path, port: int, cert_dir: Path) -> list[str]:
    """What kube-controller-manager and kube-scheduler share: their identity, their own port on
    loopback (only /healthz is asked of it, which needs no caller identity, so no delegated
    authentication is configured), and no leader election (one of each runs)."""
    return [
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        "--leader-elect=false",
    ]


def _fake_node(name: str, ip: str) -> dict[str, Any]:
    """A Node for kwok: the annotation kwok selects, and the status a kubelet reports at
    registration (capacity, address, system info); kwok then keeps it Ready."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION[0]: KWOK_NODE_ANNOTATION[1]},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "type": "kwok"},
        },
        "status": {
            "capacity": dict(NODE_CAPACITY),
            "allocatable": dict(NODE_CAPACITY),
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def _node_schedulable(node: Mapping[str, Any]) -> bool:
    conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    taints = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []}
    return conditions.get("Ready") == "True" and not taints & {
        "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "node.kubernetes.io/unschedulable"}


# --------------------------------------------------------------------------------------------
# Control plane
# --------------------------------------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver on loopback, with RBAC on and token users for identity tests, and the
    cluster around them: kube-controller-manager (Deployments, ReplicaSets, Jobs, EndpointSlices,
    garbage collection, HPAs...), kube-scheduler, and kwok playing the kubelet of ``nodes`` fake
    Nodes, so Deployments get pods that are scheduled, start and become ready (see KWOK_STAGES).

    ``start()`` returns once /readyz answers and every Node is Ready, and writes ``kubeconfig``
    with one context per user (``admin`` current). Use as a context manager or call ``stop()``;
    anything left running is stopped at interpreter exit anyway.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        users: Mapping[str, Sequence[str]] = DEFAULT_USERS,
        bins: Binaries | None = None,
        startup_timeout: float = 90.0,
        extra_apiserver_args: Sequence[str] = (),
        nodes: int = 3,
    ) -> None:
        """``nodes``: fake Nodes of NODE_CAPACITY each (110 pods); size it for the pods you need."""
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="launchgate-cp-"))
        self.users = {u: tuple(g) for u, g in users.items()}
        if "admin" not in self.users:
            self.users["admin"] = ("system:masters",)
        self.bins = bins
        self.startup_timeout = startup_timeout
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.server = ""
        self.tokens: dict[str, str] = {}
        self.ca_file = self.workdir / "certs" / "apiserver.crt"
        self.etcd_url = ""
        self._children: list[_Child] = []
        self.nodes = nodes
        self.component_tokens: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        """Start etcd, then kube-apiserver; wait until both are healthy; write the kubeconfig."""
        if self._children:
            return self
        bins = self.bins = self.bins or binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port, api_port = _free_ports(3)
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.server = f"https://127.0.0.1:{api_port}"
        try:
            etcd = _spawn("etcd", [
                str(bins.etcd),
                "--name=launchgate",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=launchgate=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",  # throwaway data: durability only costs time
                "--log-level=warn",
            ], self.workdir)
            self._children.append(etcd)
            _wait_http(etcd, f"{self.etcd_url}/health", timeout=self.startup_timeout,
                       ok=lambda r: r.json().get("health") == "true")

            self.tokens = {user: secrets.token_hex(16) for user in self.users}
            token_file = self.workdir / "tokens.csv"
            self.component_tokens = {c: secrets.token_hex(16) for c in COMPONENT_USERS}
            token_file.write_text("".join(
                [_token_line(self.tokens[u], u, g) for u, g in self.users.items()]
                + [_token_line(self.component_tokens[c], u, g) for c, (u, g) in COMPONENT_USERS.items()]
            ))
            token_file.chmod(0o600)
            sa_key = self.workdir / "sa.key"
            sa_key.write_text(_ec_private_key_pem())
            sa_key.chmod(0o600)
            api = _spawn("kube-apiserver", [
                str(bins.kube_apiserver),
                f"--etcd-servers={self.etcd_url}",
                f"--cert-dir={self.workdir / 'certs'}",  # self-signed serving cert + CA, for 127.0.0.1
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                # Room for every Service a whole test session creates: a /24 holds 254, fewer
                # than the suite makes before the namespace controller has deleted old ones.
                "--service-cluster-ip-range=10.0.0.0/16",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                f"--token-auth-file={token_file}",
                f"--service-account-issuer={self.server}/",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                # Pods run no code here, so they need no ServiceAccount token; without this
                # admission a pod needs no "default" ServiceAccount to exist in its namespace first.
                "--disable-admission-plugins=ServiceAccount",
                # The `kubernetes` Service endpoints would be 127.0.0.1, which is invalid; skip them.
                "--endpoint-reconciler-type=none",
                *self.extra_apiserver_args,
            ], self.workdir)
            self._children.append(api)
            admin = {"Authorization": f"Bearer {self.tokens['admin']}"}
            # The CA file appears only once the API server runs, so the poll cannot verify TLS;
            # the check right after does, with the CA that goes into the kubeconfig.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                _wait_http(api, f"{self.server}/readyz", timeout=self.startup_timeout,
                           headers=admin, verify=False)
            requests.get(f"{self.server}/readyz", headers=admin, verify=str(self.ca_file),
                         timeout=10).raise_for_status()
            self._write_kubeconfig()
            self._start_cluster(bins, sa_key)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the components, kube-apiserver, then etcd (SIGTERM, then SIGKILL); remove a workdir
        we created."""
        for child in reversed(self._children):
            _stop_child(child)
        self._children.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def detach(self) -> list[dict[str, Any]]:
        """Let the processes outlive this interpreter (``devenv up``); returns what to record."""
        out = []
        for child in self._children:
            _LIVE.pop(child.popen.pid, None)
            out.append(child.record())
        self._own_workdir = False
        return out

    def pids(self) -> dict[str, int]:
        """The running components' process ids by name (etcd, kube-apiserver, kwok...)."""
        return {c.name: c.popen.pid for c in self._children if c.popen.poll() is None}

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- clients --------------------------------------------------------------------------------

    def _write_kubeconfig(self, path: Path | None = None, tokens: Mapping[str, str] | None = None,
                          current: str = "admin") -> Path:
        """A kubeconfig with one context per user of ``tokens`` (default: the people's, at
        ``self.kubeconfig``)."""
        path = path or self.kubeconfig
        tokens = self.tokens if tokens is None else tokens
        cluster = "launchgate"
        # The cert-dir file holds the serving cert followed by the CA that signed it; trusting the
        # file verifies the server properly (no insecure-skip-tls-verify needed).
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {"server": self.server, "certificate-authority-data": ca}}],
            "users": [{"name": u, "user": {"token": t}} for u, t in tokens.items()],
            "contexts": [{"name": u, "context": {"cluster": cluster, "user": u}} for u in tokens],
            "current-context": current,
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # -- the cluster around the API server -----------------------------------------------------

    def _start_cluster(self, bins: Binaries, sa_key: Path) -> None:
        """kube-controller-manager, kube-scheduler and kwok, then the fake Nodes; returns once the
        controllers serve /healthz and every Node is Ready and schedulable, so a Deployment applied
        next gets its pods."""
        kc = {c: self._write_kubeconfig(self.workdir / f"{c}.kubeconfig", {c: t}, current=c)
              for c, t in self.component_tokens.items()}
        kcm_port, scheduler_port = _free_ports(2)
        kcm = _spawn("kube-controller-manager", [
            str(bins.kube_controller_manager),
            *_component_flags(kc["kube-controller-manager"], kcm_port, self.workdir / "kcm-certs"),
            # nodeipam hands Nodes pod CIDRs (kwok gives pods their IPs itself); the token controller
            # writes ServiceAccount token Secrets, which nothing here reads.
            "--controllers=*,-nodeipam,-serviceaccount-token",
            # Each controller acts as its own ServiceAccount with its bootstrap role, as on a
            # kubeadm cluster, so RBAC limits them as it would there (tokens by TokenRequest).
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={self.ca_file}",
            # client-go's default of 20 requests/s would hold back thousands of pods in a benchmark.
            "--kube-api-qps=500", "--kube-api-burst=1000",
        ], self.workdir)
        self._children.append(kcm)
        scheduler = _spawn("kube-scheduler", [
            str(bins.kube_scheduler),
            *_component_flags(kc["kube-scheduler"], scheduler_port, self.workdir / "scheduler-certs"),
            "--kube-api-qps=500", "--kube-api-burst=1000",  # as for the controller-manager: one binding a pod
        ], self.workdir)
        self._children.append(scheduler)
        kwok = _spawn("kwok", [
            str(bins.kwok),
            f"--kubeconfig={kc['kwok']}",
            *[f"--config={f}" for f in _yaml_files([KWOK_STAGES])],
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=" + "=".join(KWOK_NODE_ANNOTATION),
            # kwok renews each Node's Lease, the heartbeat the node lifecycle controller reads.
            "--node-lease-duration-seconds=40",
            f"--cidr={POD_CIDR}",
            f"--node-ip={NODE_IP_BASE - 9}",
        ], self.workdir)
        self._children.append(kwok)
        with warnings.catch_warnings():  # their self-signed serving certs: only liveness is asked
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            for child, port in ((kcm, kcm_port), (scheduler, scheduler_port)):
                _wait_http(child, f"https://127.0.0.1:{port}/healthz", timeout=self.startup_timeout, verify=False)
        self.add_nodes(self.nodes)
        self.wait_nodes_ready(kwok)

    def add_nodes(self, count: int, start: int = 0) -> list[str]:
        """Create ``count`` fake Nodes (``kwok-node-<i>``) for kwok to play the kubelet of."""
        names = [f"kwok-node-{i}" for i in range(start, start + count)]
        docs = [_fake_node(name, str(NODE_IP_BASE + i)) for i, name in enumerate(names, start)]
        self.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in docs))
        return names

    def wait_nodes_ready(self, kwok: _Child | None = None, timeout: float | None = None) -> None:
        """Until every Node is Ready and no longer tainted not-ready (only then does the scheduler
        place pods on it: the node lifecycle controller removes the taint admission put on)."""
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        admin = {"Authorization": f"Bearer {self.tokens['admin']}"}
        last = "no Nodes"
        while True:
            if kwok is not None and kwok.popen.poll() is not None:
                raise DevEnvError(f"kwok exited with {kwok.popen.returncode}; log {kwok.log}:\n" + _log_tail(kwok.log))
            nodes = requests.get(f"{self.server}/api/v1/nodes", headers=admin, verify=str(self.ca_file),
                                 timeout=10).json().get("items") or []
            waiting = [n["metadata"]["name"] for n in nodes if not _node_schedulable(n)]
            if nodes and not waiting:
                return
            last = f"not ready: {', '.join(waiting)}" if waiting else last
            if time.monotonic() > deadline:
                logs = kwok.log if kwok is not None else self.workdir
                raise DevEnvError(f"Nodes not ready after {timeout or self.startup_timeout:.0f}s ({last}); see {logs}")
            time.sleep(0.2)

    def kubectl(
        self, *args: str, user: str | None = None, input: str | None = None, check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster as ``user`` (default admin); raise with stderr on failure."""
        bins = self.bins or binaries()
        cmd = [str(bins.kubectl), "--kubeconfig", str(self.kubeconfig)]
        if user:
            cmd += ["--context", user]
        proc = subprocess.run([*cmd, *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise DevEnvError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def apply_crds(self, paths: Iterable[Path | str], timeout: float = 60.0) -> list[str]:
        """Server-side apply YAML files/directories and wait until every CRD among them is Established.

        Returns the CRD names. Waiting matters: creating a custom resource right after its CRD
        fails until the API server has started serving the new type.
        """
        files = _yaml_files(paths)
        if not files:
            return []
        args: list[str] = []
        for f in files:
            args += ["-f", str(f)]
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=launchgate-devenv", *args)
        names = [
            doc["metadata"]["name"]
            for f in files
            for doc in yaml.safe_load_all(f.read_text())
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
        ]
        if names:
            self.kubectl("wait", "--for=condition=established", f"--timeout={int(timeout)}s",
                         *[f"crd/{n}" for n in names], timeout=timeout + 30)
        return names

    def install_gateway_api(self) -> list[str]:
        """Apply the Gateway API standard-channel CRDs (HTTPRoute etc.) at the pinned version."""
        bins = self.bins or binaries()
        return self.apply_crds([bins.gateway_api_crds])


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


class PrometheusServer:
    """A real Prometheus on a free loopback port, scraping whatever tests register.

    One scrape job reads ``<workdir>/targets/*.json`` (file_sd, refreshed every second), so
    ``add_target()``/``remove_target()`` change what is scraped without a reload. Start it on a
    backfilled ``data_dir`` (see ``backfill()``) to query history older than the process.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        data_dir: Path | str | None = None,
        rule_files: Sequence[Path | str] = (),
        extra_args: Sequence[str] = (),
        bins: Binaries | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="launchgate-prom-"))
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.data_dir = Path(data_dir) if data_dir is not None else self.workdir / "data"
        self.rule_files = [Path(p) for p in rule_files]
        self.extra_args = list(extra_args)
        self.bins = bins
        self.startup_timeout = startup_timeout
        self.targets_dir = self.workdir / "targets"
        self.config_file = self.workdir / "prometheus.yml"
        self.port = 0
        self.url = ""
        self._child: _Child | None = None

    def start(self) -> PrometheusServer:
        """Write the config, start Prometheus and wait for /-/ready."""
        if self._child:
            return self
        bins = self.bins = self.bins or binaries()
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [{
                "job_name": "launchgate",
                "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}],
            }],
        }
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        # A restart keeps its port, as a real server's address would: clients recover without reconfiguring.
        self.port = self.port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        child = _spawn("prometheus", [
            str(bins.prometheus),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *self.extra_args,
        ], self.workdir)
        self._child = child
        try:
            _wait_http(child, f"{self.url}/-/ready", timeout=self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Prometheus; remove a workdir we created (a caller's data_dir is left alone)."""
        if self._child:
            _stop_child(self._child)
            self._child = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def detach(self) -> list[dict[str, Any]]:
        """Let Prometheus outlive this interpreter (``devenv up``); returns what to record."""
        if not self._child:
            return []
        _LIVE.pop(self._child.popen.pid, None)
        self._own_workdir = False
        return [self._child.record()]

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def add_target(self, name: str, address: str, labels: Mapping[str, str] | None = None) -> None:
        """Scrape ``address`` (host:port, path /metrics) from now on, with extra target labels."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.targets_dir / f".{name}.json.tmp"
        tmp.write_text(json.dumps([{"targets": [address], "labels": dict(labels or {})}]))
        tmp.replace(self.targets_dir / f"{name}.json")  # atomic: Prometheus never reads half a file

    def remove_target(self, name: str) -> None:
        """Stop scraping the target registered as ``name`` (its series go stale)."""
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns the ``data.result`` list (empty when nothing matches)."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        r = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        r.raise_for_status()
        body = r.json()
        if body.get("status") != "success":
            raise DevEnvError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])


class KubeStateMetrics:
    """kube-state-metrics out of cluster (``--kubeconfig``) on a free loopback port: the facts about
    a deployment that the checklist judges (its pods' ServiceAccounts, labels and annotations,
    Secrets' ages, NetworkPolicies' egress rules), as Prometheus metrics.

    Only what the checklist reads is collected, and only the labels and annotations it names are
    exported (kube-state-metrics drops every other one), see examples/checklist/checklist.yaml.
    """

    RESOURCES = "pods,secrets,networkpolicies,deployments"
    LABELS = ("pods=[launchgate.dev/rollout],secrets=[launchgate.dev/agent],"
              "networkpolicies=[launchgate.dev/agent],deployments=[launchgate.dev/rollout]")
    ANNOTATIONS = "pods=[launchgate.dev/dlq-owner,launchgate.dev/runbook]"

    def __init__(self, kubeconfig: Path | str, workdir: Path | str | None = None, *, bins: Binaries | None = None,
                 namespaces: Sequence[str] = (), startup_timeout: float = 60.0) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="launchgate-ksm-"))
        self.kubeconfig = Path(kubeconfig)
        self.bins = bins
        self.namespaces = list(namespaces)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.address = ""
        self._child: _Child | None = None

    def start(self) -> KubeStateMetrics:
        """Start it and wait until its metrics endpoint answers. Its informers may still be listing
        then (an empty cluster answers an empty page): wait for the series you need, not for this."""
        if self._child:
            return self
        bins = self.bins = self.bins or binaries()
        if bins.kube_state_metrics is None:
            raise DevEnvError(f"missing: kube-state-metrics {bins.versions.get('KUBE_STATE_METRICS_VERSION', '?')} "
                              f"in {cache_dir()}\n{MISSING_HINT}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, telemetry = _free_ports(2)
        self.address = f"127.0.0.1:{self.port}"
        argv = [str(bins.kube_state_metrics), f"--kubeconfig={self.kubeconfig}", "--host=127.0.0.1",
                f"--port={self.port}", "--telemetry-host=127.0.0.1", f"--telemetry-port={telemetry}",
                f"--resources={self.RESOURCES}", f"--metric-labels-allowlist={self.LABELS}",
                f"--metric-annotations-allowlist={self.ANNOTATIONS}"]
        if self.namespaces:
            argv.append(f"--namespaces={','.join(self.namespaces)}")
        self._child = _spawn("kube-state-metrics", argv, self.workdir)
        try:
            _wait_http(self._child, f"http://{self.address}/metrics", timeout=self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._child:
            _stop_child(self._child)
            self._child = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KubeStateMetrics:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def backfill(openmetrics_text: str, data_dir: Path | str | None = None, *, bins: Binaries | None = None) -> Path:
    """Turn OpenMetrics text into TSDB blocks in a fresh data dir (for ``PrometheusServer(data_dir=)``).

    Why: gates look at windows of history (e.g. "the last 4 hours"); backfilled blocks give a test
    that history instantly. Samples must be older than the ~3h head block to be queryable from the
    blocks; query them with an explicit time. The caller owns the returned directory.
    """
    bins = bins or binaries()
    out = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="launchgate-tsdb-"))
    out.mkdir(parents=True, exist_ok=True)
    text = openmetrics_text if openmetrics_text.endswith("\n") else openmetrics_text + "\n"
    if not text.rstrip().endswith("# EOF"):
        text += "# EOF\n"
    with tempfile.NamedTemporaryFile("w", suffix=".om", delete=False) as f:
        f.write(text)
        src = Path(f.name)
    try:
        proc = subprocess.run(
            [str(bins.promtool), "tsdb", "create-blocks-from", "openmetrics", str(src), str(out)],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        src.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise DevEnvError(f"promtool backfill failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return out


# --------------------------------------------------------------------------------------------
# CLI: make up / make down
# --------------------------------------------------------------------------------------------
#
# `up` must leave the processes running after it returns. They are not simply orphaned: on
# machines whose init never reaps orphans (some sandboxes/containers), every stopped orphan would
# linger as a zombie etcd/kube-apiserver/prometheus. Instead `up` starts a small detached
# supervisor (`_serve`) that owns them, reaps them and stops them on SIGTERM; `up` waits until the
# supervisor has written state.json (everything ready), prints the exports and returns.


def _default_run_dir() -> Path:
    return cache_dir() / "run"


def _pid_alive(pid: int, exe: str) -> bool:
    """True if ``pid`` is still the process we started (not a zombie, not a recycled pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and argv0 == exe


def _wait_gone(pid: int, exe: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid, exe):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_recorded(procs: Sequence[Mapping[str, Any]], timeout: float = 10.0) -> None:
    """Stop recorded processes in reverse start order: SIGTERM, then SIGKILL, by process group."""
    for rec in reversed(procs):
        pid, exe = int(rec["pid"]), str(rec["exe"])
        if not _pid_alive(pid, exe):
            continue
        _killpg(pid, signal.SIGTERM)
        if not _wait_gone(pid, exe, timeout):
            _killpg(pid, signal.SIGKILL)
            _wait_gone(pid, exe, 5)


def _load_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((run_dir / "state.json").read_text()))
    except (OSError, ValueError):
        return None


def _all_records(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Supervisor first, then its children in start order."""
    return [state["supervisor"], *state["processes"]]


def _print_exports(state: Mapping[str, Any]) -> None:
    # stdout carries only these lines, so both `eval "$(... up)"` and `eval "$(... up | tail -1)"` work.
    print(f"export LAUNCHGATE_PROMETHEUS={state['prometheus_url']}")
    print(f"export KUBECONFIG={state['kubeconfig']}", flush=True)


def _note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_up(run_dir: Path, timeout: float = 300.0) -> int:
    """Start the supervisor (control plane + Prometheus) detached; print the exports once ready."""
    state = _load_state(run_dir)
    if state is not None:
        if all(_pid_alive(int(p["pid"]), str(p["exe"])) for p in _all_records(state)):
            _note(f"already up (state in {run_dir / 'state.json'}); `python -m launchgate_dev.devenv down` stops it")
            _print_exports(state)
            return 0
        _note("found a partly dead environment; cleaning it up first")
        _kill_recorded(_all_records(state))
    elif run_dir.exists():
        cmd_down(run_dir)  # no state: a failed or interrupted `up`; stop whatever its pidfiles name
    binaries()  # fail here, in the foreground, with the `make testenv` hint
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    t0 = time.monotonic()
    log = run_dir / "devenv.log"
    with open(log, "ab") as out:
        sup = subprocess.Popen(
            [sys.executable, "-m", "launchgate_dev.devenv", "_serve", "--dir", str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    (run_dir / "supervisor.pid").write_text(f"{sup.pid}\n")
    while (state := _load_state(run_dir)) is None:
        if sup.poll() is not None:
            _note(f"the environment failed to start (exit {sup.returncode}); {log}:\n{_log_tail(log, 40)}")
            cmd_down(run_dir)
            return 1
        if time.monotonic() - t0 > timeout:
            _killpg(sup.pid, signal.SIGTERM)
            try:
                sup.wait(30)
            except subprocess.TimeoutExpired:
                _killpg(sup.pid, signal.SIGKILL)
            _note(f"the environment was not ready after {timeout:.0f}s; {log}:\n{_log_tail(log, 40)}")
            cmd_down(run_dir)
            return 1
        time.sleep(0.1)
    _note(f"up in {time.monotonic() - t0:.1f}s: kube-apiserver {state['server']}, Prometheus {state['prometheus_url']}")
    _note(f"contexts: {', '.join(state['users'])}; Prometheus targets: {state['prometheus_targets_dir']}")
    _note(f"components: {', '.join(p['name'] for p in state['processes'])}; logs in {run_dir}/*/*.log")
    _note("watch pods come and go with `kubectl get pods -A -w`")
    _note("stop with `make down` (python -m launchgate_dev.devenv down)")
    _print_exports(state)
    return 0


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def cmd_serve(run_dir: Path) -> int:
    """The detached supervisor behind ``up``: start everything, record it, wait for SIGTERM."""
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    cp = ControlPlane(run_dir / "controlplane")
    prom = PrometheusServer(run_dir / "prometheus")
    ksm: KubeStateMetrics | None = None
    try:
        cp.start()
        _note(f"kube-apiserver ready at {cp.server}; kube-controller-manager, kube-scheduler and kwok running, "
              f"{cp.nodes} Nodes Ready")
        prom.start()
        _note(f"Prometheus ready at {prom.url}")
        crds: list[str] = []
        if any(REPO_CRDS.glob("*.yaml")):
            crds += cp.apply_crds([REPO_CRDS])
        crds += cp.install_gateway_api()
        _note(f"CRDs established: {', '.join(crds)}")
        # The checklist's deployment facts (launchgate checklist, examples/checklist/), when built.
        if (cp.bins or binaries()).kube_state_metrics is not None:
            ksm = KubeStateMetrics(cp.kubeconfig, run_dir / "kube-state-metrics", bins=cp.bins).start()
            prom.add_target("kube-state-metrics", ksm.address)
            _note(f"kube-state-metrics scraped at {ksm.address}")
        state = {
            "server": cp.server,
            "kubeconfig": str(cp.kubeconfig),
            "users": list(cp.tokens),
            "etcd_url": cp.etcd_url,
            "prometheus_url": prom.url,
            "prometheus_targets_dir": str(prom.targets_dir),
            "crds": crds,
            "supervisor": {"name": "supervisor", "pid": os.getpid(), "exe": sys.executable},
            "processes": [c.record() for c in cp._children] + ([prom._child.record()] if prom._child else [])
            + ([ksm._child.record()] if ksm is not None and ksm._child else []),
            "started_at": time.time(),
        }
        tmp = run_dir / ".state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(run_dir / "state.json")  # `up` polls for this file: never let it see half of it
        while True:
            signal.pause()
    except _Stop:
        _note("stopping")
        return 0
    finally:
        if ksm is not None:
            ksm.stop()
        prom.stop()
        cp.stop()


def cmd_down(run_dir: Path) -> int:
    """Stop everything ``up`` started in ``run_dir`` and remove the directory."""
    state = _load_state(run_dir)
    if state is None and not run_dir.exists():
        _note(f"nothing running ({run_dir} does not exist)")
        return 0
    procs: list[Mapping[str, Any]] = _all_records(state) if state else []
    if not procs:  # state.json never written or lost: fall back to the pidfiles
        for pidfile in [run_dir / "supervisor.pid", *sorted(run_dir.glob("*/*.pid"))]:
            try:
                pid = int(pidfile.read_text().strip())
                exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
            except (OSError, ValueError):
                continue
            procs.append({"pid": pid, "exe": exe})
    if procs:
        # The supervisor stops its children itself; kill the children directly only if it can't.
        _kill_recorded(procs[:1], timeout=30)
        _kill_recorded(procs[1:])
    shutil.rmtree(run_dir, ignore_errors=True)
    _note(f"stopped, removed {run_dir}")
    return 0


def cmd_status(run_dir: Path) -> int:
    """Print the state of an ``up`` environment; exit 1 when it is not (fully) running."""
    state = _load_state(run_dir)
    if state is None:
        _note("not running")
        return 1
    ok = True
    for p in _all_records(state):
        alive = _pid_alive(int(p["pid"]), str(p["exe"]))
        ok &= alive
        _note(f"{p['name']:<24} pid {p['pid']:<8} {'running' if alive else 'DEAD'}")
    _print_exports(state)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m launchgate_dev.devenv up|down|status [--dir DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m launchgate_dev.devenv",
                                     description="Local kube-apiserver + etcd + Prometheus, without Docker.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("up", "start in the background; last line: export KUBECONFIG=..."),
                        ("down", "stop what `up` started and remove its directory"),
                        ("status", "show whether `up`'s processes are running"),
                        ("_serve", argparse.SUPPRESS)):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--dir", type=Path, default=None,
                       help="run directory (default: ${LAUNCHGATE_CACHE:-$HOME/.cache/launchgate}/run)")
    args = parser.parse_args(argv)
    run_dir = (args.dir or _default_run_dir()).resolve()
    commands = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "_serve": cmd_serve}
    try:
        return commands[args.command](run_dir)
    except DevEnvError as e:
        _note(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
