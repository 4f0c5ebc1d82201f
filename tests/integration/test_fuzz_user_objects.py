"""Fuzz what users can write: AgentRollouts and LaunchGates drawn from the CRDs' own schemas.

Hypothesis draws each spec from the `openAPIV3Schema` in crds/, so the objects are what a user
can write, not what the operator's models allow. One in four ignores the CEL rules, which only the
API server judges; the others follow those the generator understands (exactly one of some fields,
unique names, weights in order), so that most reach the operator. What the API server refuses is
counted by reason. What it accepts is created beside two healthy rollouts, one of them with a
canary under way, with one operator watching; rollouts in batches, and every rollout whose first
revision became stable then gets a second one, so its canary walks into its fuzzed first phase
(the gates it names are fuzzed ones half the time). Then:

- the operator never crashes: the process started once is alive and its log has no traceback;
- every accepted object gets a status: acted on (a stable revision, a canary, a gate decision),
  or refused in status with a message that names the field to fix (`spec.phases[0].weight`);
- the healthy rollouts keep being evaluated (their last-evaluated metric moves on after the
  burst) and the canary is promoted to the end.

Some fields are not drawn from the CRD as it stands, so that what the operator does stays bounded
and says something: `interval` is at least an hour (each fuzzed object gets its first passes, not
thousands of later ones); half the pod templates are small valid ones (the CRD keeps templates
as they are, and arbitrary JSON is never a pod template: no fuzzed rollout would get past its
first Deployment); free-form JSON is kept small and lists of objects short (Hypothesis throws
away examples that draw too much, which would leave most objects with none of their larger
fields).

The seed is fixed (`derandomize`): every run tries the same objects. The counts are printed; run
with `-rA` to see them for a passing test.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from harness import CANARY1_BLOCKERS, ROOT, World, wait_for
from kubectl_util import kubectl
from test_rollout_e2e import given_a_stable_rollout, promotions, when_a_new_revision_is_applied

GROUP, VERSION = "launchgate.dev", "v1alpha1"
N_GATES = 800
N_ROLLOUTS = 400
BATCH = 100
"""Rollouts created, judged and deleted at a time: each has two Services, and deleting them as
they are judged keeps the whole session's Services within the local control plane's range."""
LIST_MOST = 3
CREATORS = 4
"""Threads creating the fuzzed objects: a burst, yet no more than the API server's share of two cores."""

FIELD_PATH = re.compile(r"\bspec(?:\.[A-Za-z][A-Za-z0-9]*|\[\d+\])+")
"""A field named the way a user finds it in YAML: spec.phases[0].weight."""

LONG_INTERVAL = {"type": "string", "maxLength": 32, "pattern": r"^[1-9][0-9]{0,3}h([0-9]{1,4}(ms|s|m))*$"}
POD_TEMPLATE: dict[str, Any] = {
    "type": "object", "required": ["spec"], "additionalProperties": False,
    "properties": {
        "metadata": {"type": "object", "additionalProperties": False, "properties": {
            "labels": {"type": "object", "maxProperties": 3, "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "maxProperties": 3, "additionalProperties": {"type": "string"}}}},
        "spec": {"type": "object", "required": ["containers"], "additionalProperties": False, "properties": {
            "containers": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
                "type": "object", "required": ["name", "image"], "additionalProperties": False, "properties": {
                    "name": {"type": "string", "pattern": r"^[a-z]([-a-z0-9]{0,8}[a-z0-9])?$"},
                    "image": {"type": "string", "pattern": r"^[a-z0-9]{1,8}(:[a-z0-9.]{1,8})?$"}}}}}},
    },
}


# ---------------------------------------------------------------- schemas to strategies
def crd_spec_schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / f"{GROUP}_{plural}.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


def json_schema(node: Any) -> Any:
    """A structural schema as JSON Schema: `nullable` and OpenAPI 3.0's boolean exclusive bounds
    translated, `x-kubernetes-*` dropped (CEL is the API server's to judge), and an object with
    properties closed unless it preserves unknown fields, as the API server prunes the others."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "description"}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    for bound in ("minimum", "maximum"):
        exclusive = "exclusive" + bound.capitalize()
        if out.get(exclusive) is True:
            out[exclusive] = out.pop(bound)
        else:
            out.pop(exclusive, None)
    if out.get("type") == "object" and "properties" in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8)
FREE_FORM = st.dictionaries(st.text(max_size=12), _JSON, max_size=4)
"""Any JSON object, kept small: hypothesis-jsonschema's would crowd the other fields out of an example."""


EXACTLY_ONE = re.compile(r"^\[(?:has\(self\.\w+\)(?:, )?)+\]\.filter\(x, x\)\.size\(\) == 1$")
UNIQUE_BY = re.compile(r"^self\.(\w+)\.all\(b, self\.\1\.exists_one\(c, c\.(\w+) == b\.\2\)\)$")
PHASE_ORDER = "weights must not decrease from one phase to the next"


def _rules(node: dict[str, Any]) -> list[str]:
    return [v["rule"] for v in node.get("x-kubernetes-validations", [])]


def strategy(node: dict[str, Any], cel: bool = True) -> st.SearchStrategy[Any]:
    """A strategy for one node of a CRD's structural schema; `cel`: follow the CEL rules it
    understands (exactly one of some fields, unique names, weights in order), so that most drawn
    objects get past the API server to the operator. The others are left to the API server.

    hypothesis-jsonschema draws the leaves; objects and lists of objects are composed here, as
    it builds an object's strategies again at every draw, ten times slower for an AgentRollout."""
    if "strategy" in node:
        return node["strategy"]  # type: ignore[no-any-return]
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return FREE_FORM
    props = node.get("properties")
    items = node.get("items")
    if node.get("type") == "object" and props is not None:
        return _object(node, props, cel)
    if node.get("type") == "array" and isinstance(items, dict) and ("properties" in items or "strategy" in items):
        keys = node.get("x-kubernetes-list-map-keys") if cel else None
        out = st.lists(strategy(items, cel), min_size=node.get("minItems", 0), max_size=_most(node),
                       unique_by=(lambda x: tuple(x.get(k) for k in keys)) if keys else None)
        ordered = cel and any(v.get("message") == PHASE_ORDER for v in node.get("x-kubernetes-validations", []))
        return out.map(_weights_in_order) if ordered else out
    return from_schema(json_schema(node))


def _object(node: dict[str, Any], props: dict[str, Any], cel: bool) -> st.SearchStrategy[Any]:
    fields = {k: strategy(v, cel) for k, v in props.items()}
    groups: list[list[str]] = []
    for rule in _rules(node) if cel else []:
        if EXACTLY_ONE.match(rule):
            groups.append(re.findall(r"has\(self\.(\w+)\)", rule))
        elif (m := UNIQUE_BY.match(rule)) is not None:
            field, key = m.groups()
            fields[field] = st.lists(strategy(props[field]["items"], cel), min_size=props[field].get("minItems", 0),
                                     max_size=_most(props[field]), unique_by=_by(key))
    required = set(node.get("required", []))

    def build(chosen: tuple[str, ...]) -> st.SearchStrategy[Any]:
        need = required | set(chosen)
        left_out = {f for g in groups for f in g} - set(chosen)
        return st.fixed_dictionaries({k: fields[k] for k in props if k in need},
                                     optional={k: fields[k] for k in props if k not in need | left_out})

    return st.sampled_from([build(chosen) for chosen in itertools.product(*groups)]).flatmap(lambda s: s)


def _most(array: dict[str, Any]) -> int:
    """At most a few objects in a list: a long list of large objects is more than one Hypothesis
    example may draw, and such examples are thrown away, leaving mostly objects without the list."""
    return min(array.get("maxItems", LIST_MOST), LIST_MOST)


def _by(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda item: item.get(key)


def _weights_in_order(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The phases' weights sorted across and within phases, each phase keeping its shape."""
    flat = iter(sorted(w for p in phases for w in p.get("weights", [p["weight"]] if "weight" in p else [])))
    out = []
    for p in phases:
        p = dict(p)
        if "weights" in p:
            p["weights"] = [next(flat) for _ in p["weights"]]
        elif "weight" in p:
            p["weight"] = next(flat)
        out.append(p)
    return out


def drawn(strat: st.SearchStrategy[Any], n: int) -> list[Any]:
    """`n` examples of `strat`, the same ones every run."""
    out: list[Any] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strat)
    def collect(example: Any) -> None:
        out.append(example)

    collect()
    return out


def specs(schema: dict[str, Any], n: int, weighty: str | None = None) -> list[dict[str, Any]]:
    """`n` specs: one in four drawn from the schema alone, the others following the CEL rules
    `strategy` knows, half of those with the optional field `weighty`. Hypothesis throws away
    examples that draw too much, so a large optional field would be left out of most of them."""
    raw, cel = strategy(schema, cel=False), strategy(schema)
    with_it = strategy({**schema, "required": [*schema.get("required", []), weighty]}) if weighty else cel
    return drawn(st.sampled_from([raw, cel, with_it, with_it]).flatmap(lambda s: s), n)


def gate_name(i: int) -> str:
    return f"fz-launchgate-{i:04d}"


def rollout_specs(n: int) -> list[dict[str, Any]]:
    schema = crd_spec_schema("agentrollouts")
    props = schema["properties"]
    props["interval"] = LONG_INTERVAL
    props["template"] = {"strategy": st.one_of(FREE_FORM, from_schema(POD_TEMPLATE))}
    # Half the gates a phase names are fuzzed ones, so the canaries evaluate them, not only miss them.
    gates = props["phases"]["items"]["properties"]["gates"]
    gates["items"] = {"strategy": st.one_of(st.builds(gate_name, st.integers(0, N_GATES - 1)),
                                            from_schema(gates["items"]))}
    return specs(schema, n, "phases")


def gate_specs(n: int) -> list[dict[str, Any]]:
    schema = crd_spec_schema("launchgates")
    schema["properties"]["interval"] = LONG_INTERVAL
    return specs(schema, n)


# ---------------------------------------------------------------- the objects, created and deleted
Key = tuple[str, str]
"""(plural, name) of a fuzzed object."""
Outcome = tuple[str, str] | None
"""(what became of it, the detail counted), None while the operator has said nothing."""


def _refusal(e: ApiException) -> str:
    """What the API server refused, by reason: its status code and the first cause's reason and
    field (indices dropped), e.g. `422 FieldValueInvalid spec.phases[]`."""
    try:
        body = json.loads(e.body or "{}")
    except ValueError:
        body = {}
    causes = (body.get("details") or {}).get("causes") or [{}]
    field = re.sub(r"\[\d+\]", "[]", str(causes[0].get("field", "")))
    return f"{e.status} {causes[0].get('reason') or body.get('reason') or e.reason} {field}".strip()


def _gone_already(call: Callable[[], Any]) -> None:
    try:
        call()
    except ApiException as e:
        if e.status != 404:
            raise


class Fuzz:
    """The fuzzed objects of one namespace: created with a few threads, what the API server
    accepted and why it refused the rest, and what the operator said about each."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom, self.core, self.ns = client.CustomObjectsApi(api), client.CoreV1Api(api), namespace
        self.accepted: dict[Key, dict[str, Any]] = {}
        self.refused: Counter[str] = Counter()
        self.outcomes: dict[Key, Outcome] = {}
        self.canaries: dict[Key, Outcome] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _each(fn: Callable[[Any], None], items: Any) -> None:
        with ThreadPoolExecutor(CREATORS) as pool:
            list(pool.map(fn, items))

    def create(self, plural: str, kind: str, specs: dict[int, dict[str, Any]]) -> list[Key]:
        made: list[Key] = []

        def one(i: int) -> None:
            name = f"fz-{kind.lower()}-{i:04d}"  # a LaunchGate's is gate_name(i)
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": specs[i]}
            try:
                obj = self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)
            except ApiException as e:
                with self._lock:
                    self.refused[f"{kind} {_refusal(e)}"] += 1
                return
            with self._lock:
                self.accepted[(plural, name)] = {"spec": specs[i], "generation": obj["metadata"]["generation"]}
                made.append((plural, name))

        self._each(one, specs)
        return made

    def routes(self, specs: dict[int, dict[str, Any]]) -> None:
        """A backendRef in an HTTPRoute for three in four rollouts routed through one, so the
        Gateway API router gets fuzzed ports and routes shared between rollouts, and the rest find
        no route or no backendRef of theirs in it."""
        group = ("gateway.networking.k8s.io", "v1", self.ns, "httproutes")
        for i, spec in specs.items():
            gateway = (spec.get("trafficRouting") or {}).get("gatewayAPI")
            if gateway is None or i % 4 == 3:
                continue
            ref = {"name": f"fz-agentrollout-{i:04d}-stable", "port": gateway.get("port", 80)}
            try:
                route = self.custom.get_namespaced_custom_object(*group, gateway["httpRoute"])
            except ApiException as e:
                if e.status != 404:
                    raise
                self.custom.create_namespaced_custom_object(*group[:3], "httproutes", {
                    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"name": gateway["httpRoute"]}, "spec": {"rules": [{"backendRefs": [ref]}]}})
                continue
            # A route has at most 16 rules of 16 backendRefs: 8 stable ones a rule leave room for
            # the canary ones the operator adds.
            rules = route["spec"]["rules"]
            rule = next((r for r in rules if len(r["backendRefs"]) < 8), None)
            if rule is None and len(rules) < 16:
                rule = {"backendRefs": []}
                rules.append(rule)
            if rule is not None:
                rule["backendRefs"].append(ref)
                self.custom.replace_namespaced_custom_object(*group, gateway["httpRoute"], route)

    def new_revision(self, keys: list[Key]) -> list[Key]:
        """A new image for each rollout whose first revision became stable, so its canary walks
        into its fuzzed first phase: gates, rollback triggers, replay, approval."""
        stable = [k for k in keys if (self.outcomes.get(k) or ("",))[0] == "acted on"
                  and ((self.accepted[k]["spec"].get("template") or {}).get("spec") or {}).get("containers")]

        def one(key: Key) -> None:
            template = json.loads(json.dumps(self.accepted[key]["spec"]["template"]))
            template["spec"]["containers"][0]["image"] = "fz:2"
            obj = self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, key[0], key[1],
                                                             {"spec": {"template": template}})
            self.accepted[key]["generation"] = obj["metadata"]["generation"]

        self._each(one, stable)
        return stable

    def delete(self, keys: list[Key]) -> None:
        """The rollouts, then the Services the operator made for them: the local control plane
        has no garbage collector and a small Service IP range shared by the whole session."""
        self._each(lambda k: _gone_already(lambda: self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.ns, k[0], k[1])), keys)
        services = [f"{k[1]}-{role}" for k in keys for role in ("stable", "canary")]
        self._each(lambda s: _gone_already(lambda: self.core.delete_namespaced_service(s, self.ns)), services)

    def said(self, keys: list[Key], timeout: float) -> dict[Key, Outcome]:
        """Each object's outcome once all have one and two reads a second apart agree (a revision
        that becomes stable can be refused a Deployment right after). Past `timeout`, what there is:
        the test names the objects left without a status."""
        deadline = time.monotonic() + timeout
        last: dict[Key, Outcome] = {}
        while True:
            now = self._statuses(set(keys))
            if (all(now.get(k) is not None for k in keys) and now == last) or time.monotonic() > deadline:
                return {k: now.get(k) for k in keys}
            last = now
            time.sleep(1.0)

    def _statuses(self, keys: set[Key]) -> dict[Key, Outcome]:
        out: dict[Key, Outcome] = {}
        for plural, judge in (("agentrollouts", judge_rollout), ("launchgates", judge_gate)):
            if not any(k[0] == plural for k in keys):
                continue
            for obj in self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural)["items"]:
                key = (plural, obj["metadata"]["name"])
                if key in keys:
                    out[key] = judge(obj)
        return out

    def summary(self, tried: int) -> str:
        lines = [f"fuzz: tried {tried}, refused by the API server {sum(self.refused.values())}, accepted "
                 f"{len(self.accepted)}: " + _counted(self.outcomes) + f"; new revisions {len(self.canaries)}: "
                 + _counted(self.canaries)]
        lines += ["  refused by the API server:"] + [f"    {n:4d} {r}" for r, n in self.refused.most_common()]
        for title, outcomes in (("accepted", self.outcomes), ("new revisions", self.canaries)):
            details = Counter(f"{k[0]}: {v[0]}: {v[1]}" for k, v in outcomes.items() if v)
            lines += [f"  {title}:"] + [f"    {n:4d} {d}" for d, n in sorted(details.items())]
        return "\n".join(lines)

    def unexplained(self) -> list[str]:
        """Objects with no status, or refused in status without a field named, with their specs."""
        bad = {**{k: v for k, v in self.outcomes.items() if k not in self.canaries}, **self.canaries}
        return [f"{k[0]}/{k[1]} {v}: {json.dumps(self.accepted[k]['spec'])[:400]}"
                for k, v in sorted(bad.items()) if v is None or v[0] == UNNAMED]


def _counted(outcomes: dict[Key, Outcome]) -> str:
    return ", ".join(f"{n} {o}" for o, n in sorted(Counter(v[0] if v else "no status" for v in outcomes.values()).items()))


# ---------------------------------------------------------------- what the operator said
UNNAMED = "refused, no field named"


def judge_rollout(obj: dict[str, Any]) -> Outcome:
    st_ = obj.get("status") or {}
    conds = {c.get("type"): c for c in st_.get("conditions") or []}
    if st_.get("observedGeneration") != obj["metadata"].get("generation") or not conds:
        return None
    if (conds.get("Stalled") or {}).get("status") == "True":
        return _refused(conds["Stalled"].get("reason") or "Stalled", st_.get("message") or "")
    at = f" at {st_['phase']}" if st_.get("canaryRevision") else ""
    return "acted on", f"{st_.get('state')}{at}"


def judge_gate(obj: dict[str, Any]) -> Outcome:
    st_ = obj.get("status") or {}
    conds = {c.get("type"): c for c in st_.get("conditions") or []}
    message = st_.get("message") or ""
    if (conds.get("Stalled") or {}).get("status") == "True" or message.startswith("invalid spec"):
        return _refused((conds.get("Stalled") or {}).get("reason") or "InvalidSpec", message)
    if st_.get("observedGeneration") != obj["metadata"].get("generation"):
        return None
    return "acted on", st_.get("decision") or "idle"


def _refused(reason: str, message: str) -> tuple[str, str]:
    named = FIELD_PATH.search(message)
    if named is None:
        return UNNAMED, f"{reason}: {message}"
    return "refused in status, field named", f"{reason} {re.sub(r'[0-9]+', '', named.group(0))}"


def last_evaluated(op: Any, ns: str, name: str) -> float:
    for line in op.scrape().splitlines():
        if line.startswith("launchgate_rollout_last_evaluated_timestamp_seconds{") and \
                f'namespace="{ns}"' in line and f'rollout="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---------------------------------------------------------------- the test
@pytest.fixture
def world(kubeconfig: Path, prometheus: Any, tmp_path: Path) -> Iterator[World]:
    w = World(kubeconfig, prometheus, f"fuzz-{random.randrange(10**6)}", tmp_path)
    w.gate("canary1", CANARY1_BLOCKERS)
    yield w
    w.close()
    # What a batch left behind (a pass that ended after its rollout was deleted): Service IPs are few.
    kubectl(kubeconfig, "delete", "services", "--all", "-n", w.ns, "--wait=false", check=False)


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    api.configuration.connection_pool_maxsize = CREATORS
    yield api
    api.close()


@pytest.mark.timeout(600)
def test_fuzzed_objects_never_crash_stall_or_go_unexplained(world: World, api: client.ApiClient) -> None:
    w = world
    clock = [time.monotonic()]
    gates, rollouts = gate_specs(N_GATES), rollout_specs(N_ROLLOUTS)
    clock.append(time.monotonic())
    # The operator's own default for gates no rollout uses (the harness's 1 s would evaluate every
    # fuzzed gate every second); the healthy rollouts keep their 1 s interval.
    op = w.start_operator(LAUNCHGATE_GATE_INTERVAL="30s")
    given_a_stable_rollout(w, "steady")
    given_a_stable_rollout(w, "walker")
    rev2 = when_a_new_revision_is_applied(w, "walker")
    w.agent(rev2, success_rate=0.995, p95_ms=1000)

    fuzz = Fuzz(api, w.ns)
    clock.append(time.monotonic())
    made = fuzz.create("launchgates", "LaunchGate", dict(enumerate(gates)))
    # Rollouts in batches, each deleted once judged, so their Services never fill the IP range.
    for start in range(0, len(rollouts), BATCH):
        batch = {i: rollouts[i] for i in range(start, min(start + BATCH, len(rollouts)))}
        fuzz.routes(batch)
        keys = fuzz.create("agentrollouts", "AgentRollout", batch)
        fuzz.outcomes.update(fuzz.said(keys, timeout=90))
        fuzz.canaries.update(fuzz.said(fuzz.new_revision(keys), timeout=90))
        fuzz.delete(keys)
    fuzz.outcomes.update(fuzz.said(made, timeout=90))
    clock.append(time.monotonic())
    after = time.time()
    print(fuzz.summary(len(gates) + len(rollouts)))
    print(f"  drawn in {clock[1] - clock[0]:.0f}s, created and judged in {clock[3] - clock[2]:.0f}s")

    # Never crashes.
    op.assert_alive()
    assert op.starts == 1
    assert "Traceback" not in op.log.read_text(errors="replace"), op.tail(120)
    # Every accepted object gets a status, and every refusal in status names the field to fix.
    unexplained = fuzz.unexplained()
    assert not unexplained, f"{len(unexplained)} objects unexplained, e.g.:\n" + "\n".join(unexplained[:10])
    assert fuzz.refused and fuzz.accepted and fuzz.canaries, "the fuzz reached neither side of a check"
    # Never stalls the healthy rollouts: both are evaluated after the burst, and the canary completes.
    wait_for("the healthy rollouts evaluated after the burst",
             lambda: min(last_evaluated(op, w.ns, n) for n in ("steady", "walker")) > after, timeout=60)
    st_ = w.wait_status("walker", "the canary promoted to the end",
                        lambda s: s.get("stableRevision") == rev2 and s.get("state") == "Healthy", timeout=180)
    assert promotions(w, "walker")[-1] == ("Completed", "promote"), st_
    assert w.status("steady")["state"] == "Healthy"
    op.assert_alive()
