"""What a user with a cluster installs, checked against the real kube-apiserver.

* `kubectl kustomize manifests/` and `helm template charts/launchgate` render the same operator
  (CRDs, namespace, RBAC, admission policies, Deployment, metrics Service), and the API server
  accepts every object in a server-side dry run (schemas, CEL in the admission policies, the
  Deployment's pod template).
* The operator's ServiceAccount, really created and authenticated with a real token, may do what
  the operator needs and nothing it must not (no edits to the decision timeline, no forged
  approvals, no spec writes by update, no deletes).
* The operator's pod passes Pod Security Admission "restricted" in a namespace that enforces it,
  and a pod without the security context is refused there (so the check is not vacuous).
* The Argo CD health-check patch applies to an argocd-cm ConfigMap, directly and as a component.

helm comes from `make testenv` (hack/testenv/build.sh, HELM_VERSION in hack/versions.env).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import kustomize_with_retention
from kubectl_util import kubectl
from launchgate_dev import devenv

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "launchgate"
NS = "launchgate-system"
SA = "launchgate-operator"
SA_USER = f"system:serviceaccount:{NS}:{SA}"
APP_NS = "agents-packaging"  # any namespace: the operator's rights are cluster-wide

Docs = list[dict[str, Any]]


def _docs(text: str) -> Docs:
    return [d for d in yaml.safe_load_all(text) if d]


def _one(docs: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _pod_spec(docs: Docs) -> dict[str, Any]:
    return _one(docs, "Deployment", "launchgate-operator")["spec"]["template"]["spec"]


# --------------------------------------------------------------------------- renders


class Helm:
    """The pinned helm binary, with its config and cache dirs kept out of the user's home."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.path), *args], capture_output=True, text=True, timeout=120, env=self.env)

    def __call__(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, f"helm {' '.join(args)} failed: {proc.stderr}"
        return proc.stdout


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    v = devenv.read_versions().get("HELM_VERSION")
    if not v:
        pytest.fail(f"HELM_VERSION missing in {devenv.VERSIONS_FILE}", pytrace=False)
    path = devenv.cache_dir() / f"helm-{v}" / "helm"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"missing: {path}\n{devenv.MISSING_HINT}", pytrace=False)
    return Helm(path, tmp_path_factory.mktemp("helm-home"))


def _helm_template(helm: Helm, *sets: str) -> Docs:
    kube = devenv.read_versions()["KUBERNETES_VERSION"]
    args = ["template", "launchgate", str(CHART), "--namespace", NS, "--include-crds", "--kube-version", kube]
    for s in sets:
        args += ["--set", s]
    return _docs(helm(*args))


@pytest.fixture(scope="module")
def kustomized(kubeconfig: Path) -> Docs:
    return _docs(kubectl(kubeconfig, "kustomize", str(ROOT / "manifests")).stdout)


@pytest.fixture(scope="module")
def helm_default(helm: Helm) -> Docs:
    return _helm_template(helm)


@pytest.fixture(scope="module")
def kustomized_retention(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Docs:
    return kustomize_with_retention(kubeconfig, tmp_path_factory.mktemp("retention-overlay"))


@pytest.fixture(scope="module")
def helm_retention(helm: Helm) -> Docs:
    return _helm_template(helm, "recordRetention=2160h")


ALL_OPTIONS = (
    "prometheus.existingSecret=prometheus-credentials",
    "prometheus.caKey=ca.crt",
    "webhook.existingSecret=launchgate-webhook",
    "webhook.format=slack",
    "watchNamespaces={agents,agents-staging}",
    "extraArgs={--verbose}",
    "metrics.serviceMonitor.enabled=true",
    "priorityClassName=system-cluster-critical",
    "recordRetention=2160h",
    "monitoring.grafanaDashboard.enabled=true",
    "monitoring.grafanaDashboard.namespace=monitoring",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
)


@pytest.fixture(scope="module")
def helm_all_options(helm: Helm) -> Docs:
    return _helm_template(helm, *ALL_OPTIONS)


# --------------------------------------------------------------------------- the cluster side


@pytest.fixture(scope="module")
def installed(kubeconfig: Path, kustomized: Docs) -> Iterator[None]:
    """Really apply the namespace, the operator's ServiceAccount and ClusterRole, and a binding.

    The binding gets its own name: the operator tests (harness.operator_kubeconfig) bind the same
    ClusterRole under the shipped name to their token user, and must keep that binding.
    """
    binding = copy.deepcopy(_one(kustomized, "ClusterRoleBinding", "launchgate-operator"))
    binding["metadata"]["name"] = "launchgate-operator-packaging-test"
    subset = [_one(kustomized, "Namespace", NS), _one(kustomized, "ServiceAccount", SA),
              _one(kustomized, "ClusterRole", "launchgate-operator"), binding,
              _one(kustomized, "Role", "launchgate-leader-election"),
              _one(kustomized, "RoleBinding", "launchgate-leader-election")]
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(subset))
    kubectl(kubeconfig, "create", "namespace", APP_NS, check=False)
    yield
    kubectl(kubeconfig, "delete", "clusterrolebinding", binding["metadata"]["name"], check=False)


def _dry_run_apply(kubeconfig: Path, docs: Docs) -> subprocess.CompletedProcess[str]:
    proc = kubectl(kubeconfig, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs), check=False)
    assert proc.returncode == 0, f"server-side dry run refused:\n{proc.stderr}"
    assert "PodSecurity" not in proc.stderr, proc.stderr  # the namespace warns at level restricted
    return proc


# --------------------------------------------------------------------------- kustomize


def test_kustomize_renders_the_whole_install(kustomized: Docs) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in kustomized)
    crds = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert len([k for k in kinds if k[0] == "CustomResourceDefinition"]) == len(crds)
    for want in [("Namespace", NS), ("ServiceAccount", SA), ("ClusterRole", "launchgate-operator"),
                 ("ClusterRoleBinding", "launchgate-operator"), ("ClusterRole", "launchgate-approver"),
                 ("ValidatingAdmissionPolicy", "launchgate-approvals"),
                 ("ValidatingAdmissionPolicyBinding", "launchgate-rollout-actions"),
                 ("ValidatingAdmissionPolicy", "launchgate-decision-records"),
                 ("ClusterRole", "launchgate-timeline-retention"),
                 ("ClusterRoleBinding", "launchgate-timeline-retention"),
                 ("Deployment", "launchgate-operator"), ("Service", "launchgate-operator-metrics")]:
        assert want in kinds
    ns = _one(kustomized, "Namespace", NS)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for d in kustomized:
        if d["kind"] in ("ServiceAccount", "Deployment", "Service"):
            assert d["metadata"]["namespace"] == NS


def test_the_operator_deployment_is_locked_down(kustomized: Docs, helm_default: Docs) -> None:
    for docs in (kustomized, helm_default):
        deploy = _one(docs, "Deployment", "launchgate-operator")
        # Two replicas under leader election: a rolling update or a drain never leaves none.
        assert deploy["spec"]["replicas"] == 2
        assert deploy["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        pdb = _one(docs, "PodDisruptionBudget", "launchgate-operator")
        assert pdb["spec"]["minAvailable"] == 1
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
        pod = deploy["spec"]["template"]["spec"]
        (spread,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        election = {e["name"]: e for e in pod["containers"][0]["env"] if e["name"].startswith("LAUNCHGATE_LEADER")}
        assert election["LAUNCHGATE_LEADER_ELECTION"]["value"] == "true"
        assert election["LAUNCHGATE_LEADER_ELECTION_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert pod["serviceAccountName"] == SA
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (c,) = pod["containers"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
        assert c["args"] == ["--liveness", "http://0.0.0.0:8080/healthz"]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8000, "healthz": 8080}
        assert set(c["resources"]) == {"requests", "limits"} and c["resources"]["limits"]["memory"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["LAUNCHGATE_PROMETHEUS_URL"].startswith("http") and env["LAUNCHGATE_METRICS_PORT"] == "8000"
        annotations = deploy["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "8000"
        svc = _one(docs, "Service", "launchgate-operator-metrics")
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())


def test_kustomize_render_passes_a_server_side_dry_run(kubeconfig: Path, installed: None,
                                                       kustomized: Docs) -> None:
    proc = _dry_run_apply(kubeconfig, kustomized)
    assert "deployment.apps/launchgate-operator" in proc.stdout
    assert "validatingadmissionpolicy.admissionregistration.k8s.io/launchgate-approvals" in proc.stdout


# --------------------------------------------------------------------------- helm


def test_helm_chart_lints(helm: Helm) -> None:
    helm("lint", str(CHART), "--strict")
    helm("lint", str(CHART), "--strict", *[a for s in ALL_OPTIONS for a in ("--set", s)])


@pytest.mark.parametrize(("value", "complaint"), [
    ("prometheus.ur=http://prometheus:9090", "additional properties 'ur' not allowed"),
    ("gateInterval=30", "/gateInterval"),
    ("prometheus.url=prometheus:9090", "/prometheus/url"),
    ("webhook.format=teams", "/webhook/format"),
])
def test_helm_values_schema_refuses_mistakes(helm: Helm, value: str, complaint: str) -> None:
    proc = helm.run("template", "launchgate", str(CHART), "--set", value)
    assert proc.returncode != 0 and complaint in proc.stderr, proc.stderr


def test_helm_installs_the_crds_and_never_the_kustomization(helm_default: Docs) -> None:
    assert not [d for d in helm_default if d["kind"] == "Kustomization"]
    crds = {d["metadata"]["name"] for d in helm_default if d["kind"] == "CustomResourceDefinition"}
    assert len(crds) == len(list((ROOT / "crds").glob("*.yaml")))


def test_helm_renders_pass_a_server_side_dry_run(kubeconfig: Path, installed: None, helm_default: Docs,
                                                 helm_all_options: Docs) -> None:
    _dry_run_apply(kubeconfig, helm_default)
    # The ServiceMonitor and the PrometheusRule need the Prometheus Operator's CRDs, which this
    # cluster does not have; the Grafana dashboard goes to the namespace the options name.
    kubectl(kubeconfig, "create", "namespace", "monitoring", check=False)
    _dry_run_apply(kubeconfig, [d for d in helm_all_options if d["kind"] not in ("ServiceMonitor", "PrometheusRule")])


def test_helm_options_reach_the_operator(helm_all_options: Docs) -> None:
    pod = _pod_spec(helm_all_options)
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["LAUNCHGATE_PROMETHEUS_TOKEN_FILE"]["value"] == "/var/run/secrets/launchgate/prometheus/token"
    assert env["LAUNCHGATE_PROMETHEUS_CA_FILE"]["value"] == "/var/run/secrets/launchgate/prometheus/ca.crt"
    assert env["LAUNCHGATE_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"] == {"name": "launchgate-webhook", "key": "url"}
    assert env["LAUNCHGATE_WEBHOOK_AUTHORIZATION"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["LAUNCHGATE_WEBHOOK_FORMAT"]["value"] == "slack"
    assert env["LAUNCHGATE_RECORD_RETENTION"]["value"] == "2160h"
    assert c["args"][2:] == ["--namespace", "agents", "--namespace", "agents-staging", "--verbose"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "prometheus-credentials")
    assert mount["readOnly"] is True and mount["mountPath"] == "/var/run/secrets/launchgate/prometheus"
    vol = next(v for v in pod["volumes"] if v["name"] == "prometheus-credentials")
    assert vol["secret"]["secretName"] == "prometheus-credentials"
    sm = _one(helm_all_options, "ServiceMonitor", "launchgate-operator")
    svc = _one(helm_all_options, "Service", "launchgate-operator-metrics")
    assert all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    # The Grafana dashboard for the sidecar, and the alert rules: the files manifests/monitoring ships.
    dash = _one(helm_all_options, "ConfigMap", "launchgate-grafana-dashboard")
    assert dash["metadata"]["namespace"] == "monitoring" and dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["launchgate.json"]) == json.loads(
        (ROOT / "manifests" / "monitoring" / "grafana-dashboard.json").read_text())
    rule = _one(helm_all_options, "PrometheusRule", "launchgate")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load((ROOT / "manifests" / "monitoring" / "launchgate.rules.yaml").read_text())


def test_helm_and_kustomize_grant_the_same_lease_rights(kustomized: Docs, helm_default: Docs) -> None:
    for kind in ("Role", "RoleBinding"):
        h, k = (_one(d, kind, "launchgate-leader-election") for d in (helm_default, kustomized))
        assert h["metadata"]["namespace"] == k["metadata"]["namespace"] == NS
        assert h.get("rules") == k.get("rules") and h.get("subjects") == k.get("subjects")


def test_helm_and_kustomize_install_the_same_policy(kustomized: Docs, helm_default: Docs) -> None:
    """RBAC and admission policies are written twice (plain YAML and chart templates): same rules."""
    for kind, name in [("ClusterRole", "launchgate-operator"), ("ClusterRole", "launchgate-viewer"),
                       ("ClusterRole", "launchgate-approver"), ("ClusterRole", "launchgate-release-manager"),
                       ("ClusterRole", "launchgate-timeline-retention")]:
        assert _one(helm_default, kind, name)["rules"] == _one(kustomized, kind, name)["rules"], name
    viewer = _one(helm_default, "ClusterRole", "launchgate-viewer")["metadata"]["labels"]
    assert viewer["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        for name in ("launchgate-approvals", "launchgate-rollout-actions", "launchgate-decision-records"):
            assert _one(helm_default, kind, name)["spec"] == _one(kustomized, kind, name)["spec"], name
    for name in ("launchgate-operator", "launchgate-timeline-retention"):
        hb, kb = (_one(d, "ClusterRoleBinding", name) for d in (helm_default, kustomized))
        assert hb["subjects"] == kb["subjects"] and hb["roleRef"] == kb["roleRef"], name
    hp, kp = _pod_spec(helm_default), _pod_spec(kustomized)
    for key in ("securityContext", "serviceAccountName", "automountServiceAccountToken", "volumes"):
        assert hp[key] == kp[key], key
    (hc,), (kc,) = hp["containers"], kp["containers"]
    for key in ("securityContext", "resources", "livenessProbe", "readinessProbe", "ports", "args", "volumeMounts"):
        assert hc[key] == kc[key], key
    # Kustomize refers to an optional webhook Secret (and so says its format); the chart's defaults
    # have no webhook at all.
    assert {e["name"] for e in kc["env"]} - {e["name"] for e in hc["env"]} == {
        "LAUNCHGATE_WEBHOOK_URL", "LAUNCHGATE_WEBHOOK_AUTHORIZATION", "LAUNCHGATE_WEBHOOK_FORMAT"}
    # The settings both set have the same values.
    helm_values = {e["name"]: e.get("value") for e in hc["env"] if "value" in e}
    kustomize_values = {e["name"]: e.get("value") for e in kc["env"] if "value" in e}
    assert {k: v for k, v in kustomize_values.items() if k in helm_values and k != "LAUNCHGATE_PROMETHEUS_URL"} == \
        {k: v for k, v in helm_values.items() if k in kustomize_values and k != "LAUNCHGATE_PROMETHEUS_URL"}


def _env(docs: Docs) -> dict[str, Any]:
    (c,) = _pod_spec(docs)["containers"]
    return {e["name"]: e.get("value") for e in c["env"]}


def test_the_retention_option_is_the_same_in_kustomize_and_helm(kustomized: Docs, helm_default: Docs,
                                                                kustomized_retention: Docs,
                                                                helm_retention: Docs) -> None:
    """Only with a retention does the operator get `delete` on records: the component and the
    chart's recordRetention grant the same, and the base install and the chart's defaults nothing."""
    name = "launchgate-operator-record-retention"
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        assert not [d for d in kustomized + helm_default if d["kind"] == kind and d["metadata"]["name"] == name]
    assert _one(helm_retention, "ClusterRole", name)["rules"] == _one(kustomized_retention, "ClusterRole", name)[
        "rules"] == [{"apiGroups": ["launchgate.dev"], "resources": ["decisionrecords"], "verbs": ["delete"]}]
    hb, kb = (_one(d, "ClusterRoleBinding", name) for d in (helm_retention, kustomized_retention))
    assert hb["subjects"] == kb["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": NS}]
    assert hb["roleRef"] == kb["roleRef"]
    assert _env(helm_retention)["LAUNCHGATE_RECORD_RETENTION"] == _env(kustomized_retention)[
        "LAUNCHGATE_RECORD_RETENTION"] == "2160h"
    assert "LAUNCHGATE_RECORD_RETENTION" not in _env(kustomized) | _env(helm_default)


def test_the_retention_renders_pass_a_server_side_dry_run(kubeconfig: Path, installed: None,
                                                          kustomized_retention: Docs, helm_retention: Docs) -> None:
    _dry_run_apply(kubeconfig, kustomized_retention)
    _dry_run_apply(kubeconfig, helm_retention)


def test_the_records_policy_names_the_operator_service_account_the_chart_installs(helm: Helm) -> None:
    """Only the retention path deletes a DecisionRecord, and the operator's part of it is its
    ServiceAccount: the policy must name the one of the release's namespace and name."""
    retention = {v["name"]: v["expression"] for v in _one(
        _helm_template(helm, "serviceAccount.name=lg-ops"), "ValidatingAdmissionPolicy",
        "launchgate-decision-records")["spec"]["variables"]}["retention"]
    assert f"request.userInfo.username == 'system:serviceaccount:{NS}:lg-ops'" in retention
    assert "'launchgate-timeline-retention' in request.userInfo.groups" in retention


def test_helm_can_switch_off_the_optional_parts(helm: Helm) -> None:
    docs = _helm_template(helm, "admissionPolicies.enabled=false", "rbac.userRoles=false", "metrics.service.enabled=false")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert not {k for k in kinds if k[0].startswith("ValidatingAdmissionPolicy")}
    assert ("ClusterRole", "launchgate-viewer") not in kinds and ("Service", "launchgate-operator-metrics") not in kinds
    assert ("ClusterRole", "launchgate-timeline-retention") not in kinds
    assert ("ClusterRole", "launchgate-operator") in kinds and ("Deployment", "launchgate-operator") in kinds
    # Without leader election: one replica, replaced with Recreate, no Lease rights, no budget.
    single = _helm_template(helm, "leaderElection.enabled=false")
    deploy = _one(single, "Deployment", "launchgate-operator")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LAUNCHGATE_LEADER_ELECTION"] == "false"
    assert not {(d["kind"], d["metadata"]["name"]) for d in single} & {
        ("Role", "launchgate-leader-election"), ("PodDisruptionBudget", "launchgate-operator")}
    # Monitoring objects are opt-in: off by default.
    assert not {k for k in kinds if k[0] == "PrometheusRule" or k[1] == "launchgate-grafana-dashboard"}


# --------------------------------------------------------------------------- RBAC, as the real ServiceAccount


@pytest.fixture(scope="module")
def sa_token(kubeconfig: Path, installed: None) -> str:
    """A real token for the operator's ServiceAccount (TokenRequest API), so authentication,
    the ServiceAccount's groups and RBAC are all the API server's own."""
    return kubectl(kubeconfig, "create", "token", SA, "-n", NS, "--duration=10m").stdout.strip()


def _can_i(kubeconfig: Path, token: str, verb: str, resource: str, *extra: str) -> bool:
    proc = kubectl(kubeconfig, "auth", "can-i", verb, resource, f"--token={token}", *extra, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {verb} {resource}: {proc.stdout} {proc.stderr}"
    return answer == "yes"


def test_the_token_is_the_operator_service_account(kubeconfig: Path, sa_token: str) -> None:
    who = json.loads(kubectl(kubeconfig, "auth", "whoami", f"--token={sa_token}", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == SA_USER
    assert f"system:serviceaccounts:{NS}" in who["status"]["userInfo"]["groups"]


ALLOWED = [
    ("list", "agentrollouts.launchgate.dev", "-A"),
    ("watch", "agentrollouts.launchgate.dev", "-A"),
    ("watch", "launchgates.launchgate.dev", "-A"),
    ("patch", "agentrollouts.launchgate.dev", "--subresource=status"),
    ("patch", "launchgates.launchgate.dev", "--subresource=status"),
    ("patch", "agentrollouts.launchgate.dev"),  # taking off a launchgate.dev/finalizer (RBAC cannot tell it from a spec patch)
    ("create", "decisionrecords.launchgate.dev"),
    ("list", "approvals.launchgate.dev", "-A"),
    ("list", "rolloutactions.launchgate.dev", "-A"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps", "--subresource=scale"),
    ("create", "services"),
    ("get", "configmaps"),
    ("create", "jobs.batch"),
    ("update", "httproutes.gateway.networking.k8s.io"),
    ("create", "events"),
    ("create", "events.events.k8s.io"),
    # Leader election: its own Lease, in its own namespace.
    ("create", "leases.coordination.k8s.io", "-n", NS),
    ("get", "leases.coordination.k8s.io/launchgate", "-n", NS),
    ("update", "leases.coordination.k8s.io/launchgate", "-n", NS),
]

DENIED = [
    ("update", "agentrollouts.launchgate.dev"),  # the operator writes status only, never the spec
    ("update", "launchgates.launchgate.dev"),
    ("delete", "agentrollouts.launchgate.dev"),
    ("update", "decisionrecords.launchgate.dev"),  # the decision timeline is append-only
    ("patch", "decisionrecords.launchgate.dev"),
    ("delete", "decisionrecords.launchgate.dev"),
    ("create", "approvals.launchgate.dev"),  # an operator that could approve would be its own reviewer
    ("create", "rolloutactions.launchgate.dev"),
    ("delete", "deployments.apps"),
    ("delete", "services"),
    ("update", "configmaps"),
    ("delete", "httproutes.gateway.networking.k8s.io"),
    ("list", "secrets", "-A"),
    ("watch", "secrets", "-A"),
    ("create", "pods"),
    ("create", "pods/exec"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
    ("patch", "validatingadmissionpolicies.admissionregistration.k8s.io"),
    ("update", "leases.coordination.k8s.io/kube-controller-manager", "-n", NS),  # no other Lease
    ("delete", "leases.coordination.k8s.io/launchgate", "-n", NS),
    ("create", "leases.coordination.k8s.io"),  # nor in another namespace
]


@pytest.mark.parametrize("check", ALLOWED, ids=lambda c: " ".join(c))
def test_operator_may(kubeconfig: Path, sa_token: str, check: tuple[str, ...]) -> None:
    verb, resource, *extra = check
    assert _can_i(kubeconfig, sa_token, verb, resource, *(extra or ["-n", APP_NS]))


@pytest.mark.parametrize("check", DENIED, ids=lambda c: " ".join(c))
def test_operator_may_not(kubeconfig: Path, sa_token: str, check: tuple[str, ...]) -> None:
    verb, resource, *extra = check
    assert not _can_i(kubeconfig, sa_token, verb, resource, *(extra or ["-n", APP_NS]))


def test_with_the_retention_component_the_operator_may_delete_records_and_nothing_more(
        kubeconfig: Path, sa_token: str, kustomized_retention: Docs) -> None:
    """The component's role, bound to the real ServiceAccount under a name of this test's own."""
    name = "launchgate-operator-record-retention"
    binding = copy.deepcopy(_one(kustomized_retention, "ClusterRoleBinding", name))
    binding["metadata"]["name"] = f"{name}-packaging-test"
    kubectl(kubeconfig, "apply", "-f", "-",
            stdin=yaml.safe_dump_all([_one(kustomized_retention, "ClusterRole", name), binding]))
    try:
        assert wait_until(lambda: _can_i(kubeconfig, sa_token, "delete", "decisionrecords.launchgate.dev", "-n",
                                         APP_NS))
        for verb, resource in (("update", "decisionrecords.launchgate.dev"), ("patch", "decisionrecords.launchgate.dev"),
                               ("delete", "agentrollouts.launchgate.dev"), ("delete", "approvals.launchgate.dev")):
            assert not _can_i(kubeconfig, sa_token, verb, resource, "-n", APP_NS), (verb, resource)
    finally:
        kubectl(kubeconfig, "delete", "clusterrolebinding", binding["metadata"]["name"], check=False)


def wait_until(check: Any, timeout: float = 10.0) -> bool:
    """RBAC changes reach the authorizer through its informer, a moment after they are stored."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_operator_cannot_read_secrets(kubeconfig: Path, sa_token: str) -> None:
    assert not _can_i(kubeconfig, sa_token, "get", "secrets", "-n", APP_NS)


# --------------------------------------------------------------------------- Pod Security Admission


def _pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def _create_pod_dry_run(kubeconfig: Path, pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl(kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(pod), check=False)


@pytest.mark.parametrize("render", ["kustomize", "helm-default", "helm-all-options"])
def test_operator_pod_passes_restricted_pod_security(kubeconfig: Path, installed: None, render: str,
                                                     request: pytest.FixtureRequest) -> None:
    docs: Docs = request.getfixturevalue(
        {"kustomize": "kustomized", "helm-default": "helm_default", "helm-all-options": "helm_all_options"}[render])
    ns = json.loads(kubectl(kubeconfig, "get", "namespace", NS, "-o", "json").stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    proc = _create_pod_dry_run(kubeconfig, _pod("launchgate-operator-psa", _pod_spec(docs)))
    assert proc.returncode == 0 and "PodSecurity" not in proc.stderr, proc.stderr


def test_restricted_is_really_enforced(kubeconfig: Path, installed: None, kustomized: Docs) -> None:
    """The same pod without its container security context is refused: the check above is real."""
    spec = copy.deepcopy(_pod_spec(kustomized))
    del spec["containers"][0]["securityContext"]
    proc = _create_pod_dry_run(kubeconfig, _pod("launchgate-operator-psa-negative", spec))
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted' in proc.stderr
    assert "allowPrivilegeEscalation" in proc.stderr and "capabilities" in proc.stderr


# --------------------------------------------------------------------------- Argo CD


def test_argocd_health_patch_applies_to_argocd_cm(kubeconfig: Path) -> None:
    kubectl(kubeconfig, "create", "namespace", "argocd", check=False)
    kubectl(kubeconfig, "create", "configmap", "argocd-cm", "-n", "argocd", "--from-literal=url=https://argocd.example.com",
            check=False)
    patch = ROOT / "manifests" / "argocd" / "argocd-cm-patch.yaml"
    kubectl(kubeconfig, "-n", "argocd", "patch", "configmap", "argocd-cm", "--type", "merge", "--patch-file", str(patch))
    data = json.loads(kubectl(kubeconfig, "get", "configmap", "argocd-cm", "-n", "argocd", "-o", "json").stdout)["data"]
    want = yaml.safe_load(patch.read_text())["data"]
    assert data == {"url": "https://argocd.example.com", **want}


def test_argocd_component_patches_an_argo_cd_install(kubeconfig: Path, tmp_path: Path) -> None:
    (tmp_path / "argocd-cm.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "namespace": "argocd"},
         "data": {"url": "https://argocd.example.com"}}))
    component = os.path.relpath(ROOT / "manifests" / "argocd", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
         "resources": ["argocd-cm.yaml"], "components": [component]}))
    (cm,) = _docs(kubectl(kubeconfig, "kustomize", str(tmp_path)).stdout)
    want = yaml.safe_load((ROOT / "manifests" / "argocd" / "argocd-cm-patch.yaml").read_text())["data"]
    assert cm["data"] == {"url": "https://argocd.example.com", **want}
