"""One reconciliation pass of an AgentRollout: drive the world to status, observe, decide, persist.

Blocking by design (official Kubernetes client, prometheus-api-client): the Kopf handlers run it in
a worker thread. The order of the steps is what makes it restart-proof:

1. the world is driven to what status already says (idempotent; scale up before shifting traffic
   to the canary, shift traffic to stable before scaling down);
2. the decision's timeline record is created (a deterministic ID: repeating it after a crash is a
   409, not a duplicate), then status is patched, then the world is driven to the new status.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import yaml
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from launchgate.adapters import kube_objects as objects
from launchgate.adapters import metrics
from launchgate.adapters.kube import Kube
from launchgate.adapters.kube_objects import ROLLOUT, owner_reference
from launchgate.adapters.notify import AsyncDispatcher
from launchgate.adapters.routers import router_for
from launchgate.api import (
    AgentRolloutSpec,
    AgentRolloutStatus,
    LaunchGateSpec,
    PolicyBundle,
    validation_message,
)
from launchgate.api.names import service_names
from launchgate.controller.gate_status import publish_gate_status
from launchgate.core import engine, errors, hashing
from launchgate.core.actions import action_outcome, handled, next_action
from launchgate.core.approvals import counted_votes
from launchgate.core.durations import parse_duration
from launchgate.core.freshness import DEFAULT_SCRAPE_INTERVAL, default_freshness
from launchgate.core.gates import GateResult, trigger_recheck_after
from launchgate.core.hashing import short_hash
from launchgate.core.protocols import MetricsSource, Notification, NotificationKind, RouterError
from launchgate.core.rollout import (
    ApprovalVote,
    Observation,
    Outcome,
    Pods,
    ReplayState,
    canary_replicas,
    decide,
    routed_weight,
    stable_replicas,
)

log = logging.getLogger("launchgate.rollout")


@dataclass
class Settings:
    """Operator-wide settings; tests shorten intervals here, never by patching code."""

    identity: str = "launchgate-operator"
    default_gate_interval: float = 30.0
    min_interval: float = 0.5
    status_heartbeat: float = 300.0
    """An unchanged gate result is still written this often, so EVALUATED shows evaluation is alive."""
    freshness: float = default_freshness(DEFAULT_SCRAPE_INTERVAL)
    """Seconds a canary's newest sample may be old where its LaunchGate does not say (freshness.py)."""


@dataclass(frozen=True)
class Watched:
    """What the operator's watches already hold for one pass, so the pass does not read it again:
    the rollout itself, its namespace's LaunchGates, and what humans said about it."""

    approvals: tuple[dict[str, Any], ...] = ()
    actions: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None
    gates: Callable[[str], dict[str, Any] | None] | None = None
    """LaunchGate by name in the rollout's namespace (None = absent from the watch)."""


@dataclass
class PassResult:
    interval: float
    status_written: bool = False
    decision: str | None = None
    error: str | None = None
    gate_results: dict[str, GateResult | str] = field(default_factory=dict)


T = TypeVar("T")


class ByVersion:
    """What a pass derives from an object's spec (the validated model, a hash), kept while the
    object's uid and generation stay the same: the API server moves the generation on every spec
    change and never on a status write, and a deleted and re-created object has a new uid.

    At 10,000 rollouts each pass validated the rollout's and its gates' specs and hashed them
    again: ~8% of the operator's CPU (py-spy, N = 2,000). The price is the models' memory, about
    7 KiB per rollout and 3 per gate. The models are shared by later passes, so nothing may edit
    them (the decide table tests check it does not). Thread-safe as far as it needs to be: two
    passes racing for one key both compute it, and either result is right."""

    def __init__(self) -> None:
        self._held: dict[Hashable, tuple[Hashable, Any]] = {}

    def get(self, key: Hashable, meta: Mapping[str, Any], make: Callable[[], T], *also: Hashable) -> T:
        """`make()`, or what it gave for this object at the same uid, generation and `also`. An
        object without both (built by hand, not read from the API) is never held."""
        version = (meta.get("uid"), meta.get("generation"), *also)
        if version[0] is None or version[1] is None:
            return make()
        held = self._held.get(key)
        if held is not None and held[0] == version:
            value: T = held[1]
            return value
        value = make()
        self._held[key] = (version, value)
        return value

    def forget(self, key: Hashable) -> None:
        self._held.pop(key, None)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def dump_status(status: AgentRolloutStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"kopf"})


class Reconciler:
    def __init__(self, kube: Kube, metrics: MetricsSource, settings: Settings | None = None,
                 notifier: AsyncDispatcher | None = None) -> None:
        self.kube = kube
        self.metrics = metrics
        self.settings = settings or Settings()
        self.notifier = notifier
        self._specs = ByVersion()
        """("agentrollouts" | "launchgates", namespace, name) -> the validated spec."""
        self._hashes = ByVersion()
        """("revision" | "gates", namespace, rollout) -> the hash."""

    def forget(self, plural: str, namespace: str, name: str) -> None:
        """The object is gone: drop what was kept for it."""
        self._specs.forget((plural, namespace, name))
        if plural == "agentrollouts":
            self._hashes.forget(("revision", namespace, name))
            self._hashes.forget(("gates", namespace, name))

    # ------------------------------------------------------------------ entry point
    def reconcile(self, namespace: str, name: str, people: Watched | None = None) -> PassResult:
        """One pass. `people` is what the operator's watches hold (the rollout, its gates, its
        Approvals and RolloutActions); without it everything is read from the API (CLI, tests)."""
        with metrics.time_evaluation("rollout"):
            return self._reconcile(namespace, name, people)

    # Per-pass values (people, gate owners) are passed along, never kept on self: one Reconciler
    # serves every worker thread at once.
    def _reconcile(self, namespace: str, name: str, people: Watched | None) -> PassResult:
        obj = self.kube.current("agentrollouts", namespace, name, people.body if people is not None else None)
        if obj is None:
            metrics.forget(namespace, name)
            return PassResult(interval=self.settings.default_gate_interval)
        try:
            spec = self._specs.get(("agentrollouts", namespace, name), obj["metadata"],
                                   lambda: AgentRolloutSpec.model_validate(obj.get("spec") or {}))
        except ValidationError as e:
            return self._invalid(obj, f"invalid spec: {validation_message(e)}")
        interval = max(self.settings.min_interval, parse_duration(spec.interval))
        if spec.template is None:
            return self._invalid(obj, "spec.workloadRef: not supported by this operator version yet; "
                                 "use spec.template", interval)
        status = AgentRolloutStatus.model_validate(obj.get("status") or {})
        try:
            policy_text, policy_hash = self._policy(namespace, spec)
        except ValueError as e:
            return self._invalid(obj, str(e), interval)
        revision = self._hashes.get(("revision", namespace, name), obj["metadata"],
                                    lambda: hashing.revision_hash(spec.template, policy_hash), policy_hash)
        router = router_for(spec, self.kube)

        router_error: str | None = None
        try:
            self._actuate(obj, spec, status, revision, policy_text, policy_hash, router)
        except (RouterError, ApiException, ValidationError) as e:
            router_error = world_error(e)

        owners: dict[str, str] = {}
        obs, gate_results, recheck = self._observe(obj, spec, status, revision, policy_hash, people, owners)
        action = self._next_action(obj, status, people)
        if action is not None:
            obs = dataclasses.replace(obs, action=action["spec"]["action"], actor=action["spec"]["actor"])
        out = decide(spec, status, obs)
        if router_error is not None and not errors.refusal_allows(out.status.state):
            return self._router_failed(obj, status, router_error, interval)
        out.status.observed_generation = obj["metadata"].get("generation")
        # What the scale subresource reports, for an autoscaler aimed at the rollout.
        out.status.replicas, out.status.selector = spec.replicas, f"{ROLLOUT}={name}"
        self._record_votes(obj, status, out, obs)
        if action is not None:
            self._handled(obj, out, action)
        written = self._persist(obj, spec, status, out, owners)
        _observe_metrics(namespace, name, status, out, obs, written)
        if written or router_error is not None:
            try:
                self._actuate(obj, spec, out.status, revision, policy_text, policy_hash, router)
            except (RouterError, ApiException, ValidationError) as e:
                return self._router_failed(obj, out.status, world_error(e), interval)
        return PassResult(interval=self._next_interval(interval, recheck, out), status_written=written,
                          decision=out.decision,
                          gate_results=gate_results)

    def _next_interval(self, interval: float, recheck: float | None, out: Outcome) -> float:
        """Sooner than the rollout's interval while a trigger's breach is under way (`recheck`) or
        when the decision asks to look again soon; never sooner than the operator's minimum."""
        if recheck is not None and out.status.state == "Progressing":
            interval = max(self.settings.min_interval, min(interval, recheck))
        if out.recheck is not None:
            interval = max(self.settings.min_interval, min(interval, out.recheck))
        return interval

    # ------------------------------------------------------------------ policy and revision
    def _policy(self, namespace: str, spec: AgentRolloutSpec) -> tuple[str | None, str]:
        if spec.policy is None:
            return None, "none"
        if spec.policy.bundle is not None:
            text = yaml.safe_dump(spec.policy.bundle.model_dump(mode="json", by_alias=True, exclude_none=True),
                                  sort_keys=True)
            return text, hashing.policy_hash(text)
        ref = spec.policy.config_map_ref
        assert ref is not None
        data = self.kube.read_configmap(namespace, ref.name)
        if data is None or ref.key not in data:
            raise ValueError(f"spec.policy.configMapRef: ConfigMap {ref.name} has no key {ref.key}")
        try:
            PolicyBundle.model_validate(yaml.safe_load(data[ref.key]))
        except (ValidationError, yaml.YAMLError) as e:
            detail = validation_message(e) if isinstance(e, ValidationError) else str(e)
            raise ValueError(f"spec.policy.configMapRef {ref.name}/{ref.key}: invalid policy bundle: {detail}") from e
        return data[ref.key], hashing.policy_hash(data[ref.key])

    # ------------------------------------------------------------------ world
    def _actuate(self, obj: dict[str, Any], spec: AgentRolloutSpec, status: AgentRolloutStatus, revision: str,
                 policy_text: str | None, policy_hash: str, router: Any) -> None:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        if spec.template is None or status.stable_revision is None:
            return
        owner = owner_reference(obj)
        stable_svc, canary_svc = service_names(name)
        port = spec.traffic_routing.gateway_api.port if spec.traffic_routing.gateway_api else 80
        for svc, role in ((stable_svc, "stable"), (canary_svc, "canary")):
            self.kube.ensure_service(ns, objects.service(svc, name, role, port, owner), label=ROLLOUT)
        ratio = router.ratio_router
        weight = routed_weight(status)
        in_rollout = status.canary_revision is not None and status.state not in ("Degraded",)
        total = spec.replicas
        want_canary = _canary_pod_count(spec, status, ratio)
        # Stable gives up pods (replica-ratio routing) only for traffic the canary has taken over.
        want_stable = stable_replicas(total, weight if in_rollout else 0, ratio_router=ratio)
        if _finalizing(status):
            want_stable = total  # the new stable revision rolls out in full before the canary goes
        if policy_text is not None:
            self.kube.ensure_configmap(ns, objects.policy_configmap(name, policy_text, policy_hash, owner))
        # The stable Deployment gets the spec's template only once that revision is the stable one.
        if status.stable_revision == revision:
            stable = objects.deployment(f"{name}-stable", name, "stable", revision, spec.template, want_stable,
                                        owner, policy_hash if policy_text else None)
            self.kube.ensure_deployment(ns, stable)
            self.kube.keep_configmap(ns, objects.stable_template(name, revision, stable, owner), version=revision)
        elif status.stable_revision is not None and self.kube.deployment_state(ns, f"{name}-stable") is None:
            self._restore_stable(obj, status.stable_revision, want_stable)
        canary_name = f"{name}-canary"
        if in_rollout and status.canary_revision == revision and want_canary > 0:
            self.kube.ensure_deployment(ns, objects.deployment(canary_name, name, "canary", revision, spec.template,
                                                               want_canary, owner, policy_hash if policy_text else None))
        if status.stable_revision != revision:
            self.kube.scale_deployment(ns, f"{name}-stable", want_stable)
        # Traffic to stable before the canary goes away; the canary is up before it gets traffic.
        router.set_weight(ns, name, weight if in_rollout else 0)
        if want_canary == 0:
            self.kube.scale_deployment(ns, canary_name, 0)

    def _restore_stable(self, obj: dict[str, Any], revision: str, replicas: int) -> None:
        """Someone deleted the stable Deployment while the spec's template is another revision: the
        stable revision's template, kept when it became stable, brings it back, so the traffic on
        stable has pods again. Without a kept template (it was never created, e.g. refused) there
        is nothing to restore, and a new revision becomes stable directly (see decide)."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        data = self.kube.read_configmap(ns, f"{name}-stable-template")
        if not data or data.get("revision") != revision or "deployment.json" not in data:
            return
        body = json.loads(data["deployment.json"])
        body["spec"]["replicas"] = replicas
        self.kube.ensure_deployment(ns, body)
        self.kube.event(obj, "Warning", "StableRestored",
                        f"Deployment {name}-stable was missing; recreated at revision {revision} "
                        f"with {replicas} replica(s)")

    # ------------------------------------------------------------------ observation
    def _observe(self, obj: dict[str, Any], spec: AgentRolloutSpec, status: AgentRolloutStatus, revision: str,
                 policy_hash: str, people: Watched | None,
                 owners: dict[str, str]) -> tuple[Observation, dict[str, GateResult | str], float | None]:
        """What the world says now; `owners` collects the evaluated gates' owners for notifications.
        The third value is when to look again, sooner than the interval, because a trigger's
        breach is under way (None: no reason to)."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        now = now_utc()
        gates: dict[str, GateResult | str] = {}
        triggers: dict[str, Any] = {}
        recheck: float | None = None
        replay: ReplayState | None = None
        votes: list[ApprovalVote] = []
        gate_specs: dict[str, Any] = {}
        active = (status.canary_revision == revision and status.stable_revision not in (None, revision)
                  and status.state in ("Progressing", "AwaitingApproval", "Paused"))
        phases = spec.effective_phases()
        phase = phases[min(status.phase_index or 0, len(phases) - 1)]
        if active:
            base_vars = {"namespace": ns, "rollout": name, "stable": status.stable_revision or "",
                         "canary": revision, **({"policy": policy_hash} if spec.policy else {})}
            for gname in phase.gates:
                gates[gname], gobj = self._gate(ns, name, gname, spec, revision, base_vars, people, owners, now)
                if gobj is not None:
                    gate_specs[gname] = gobj
            triggers, recheck = self._triggers(name, spec, phase, base_vars)
            if phase.replay is not None:
                replay = self._replay(obj, spec, phase, revision)
        gate_versions = tuple((g, o["metadata"].get("uid"), o["metadata"].get("generation"))
                              for g, o in sorted(gate_specs.items()))
        held = all(uid is not None and gen is not None for _, uid, gen in gate_versions)
        gates_hash = self._hashes.get(
            ("gates", ns, name), obj["metadata"] if held else {},
            lambda: hashing.gates_hash({g: o.get("spec") for g, o in gate_specs.items()}, phase.gates, policy_hash),
            policy_hash, status.phase_index, gate_versions)
        if active and phase.approval is not None and status.pending_approval is not None:
            votes = counted_votes(self._listed("approvals", ns, people), name, status.pending_approval, revision,
                                  gates_hash, phase.approval.group, phase.approval.expires_after, now)
        canary_pods = stable_pods = None
        if active and _canary_pod_count(spec, status, router_for(spec, self.kube).ratio_router) > 0:
            canary_pods = self._pods(ns, f"{name}-canary", revision)
        if _finalizing(status) and status.stable_revision == revision:
            stable_pods = self._pods(ns, f"{name}-stable", revision)
        stable_missing = (status.stable_revision not in (None, revision) and status.canary_revision != revision
                          and self.kube.deployment_state(ns, f"{name}-stable") is None)
        obs = Observation(now=now, revision=revision, gates_hash=gates_hash, gates=gates, triggers=triggers,
                          replay=replay, votes=votes, canary_pods=canary_pods, stable_pods=stable_pods,
                          stable_missing=stable_missing)
        return obs, gates, recheck

    def _gate(self, ns: str, name: str, gname: str, spec: AgentRolloutSpec, revision: str,
              base_vars: dict[str, str], people: Watched | None, owners: dict[str, str],
              now: datetime) -> tuple[GateResult | str, dict[str, Any] | None]:
        """One gate of the phase, evaluated and its status published: its result (or why there is
        none), and the gate object when its spec is valid, for the gates hash."""
        watched = people.gates(gname) if people is not None and people.gates is not None else None
        gobj = self.kube.current("launchgates", ns, gname, watched) if watched is not None \
            else self.kube.get("launchgates", ns, gname)
        if gobj is None:
            return f"LaunchGate {gname} not found", None
        try:
            gspec = self._specs.get(("launchgates", ns, gname), gobj["metadata"],
                                    functools.partial(LaunchGateSpec.model_validate, gobj.get("spec") or {}))
        except ValidationError as e:
            return f"invalid LaunchGate {gname}: {validation_message(e)}", None
        try:
            res = engine.evaluate(gspec, self.metrics, {**base_vars, "window": gspec.window},
                                  max_age=parse_duration(spec.interval) / 4, freshness=self.settings.freshness)
        except Exception as e:  # noqa: BLE001 - a broken gate holds the rollout, never crashes it
            return f"evaluation failed: {e}", gobj
        owners.update(gspec.owners.model_dump(exclude_none=True))
        publish_gate_status(self.kube, gobj, gspec, res, now, rollout=name, revision=revision,
                            notifier=self.notifier, heartbeat=self.settings.status_heartbeat)
        return res, gobj

    def _triggers(self, name: str, spec: AgentRolloutSpec, phase: Any,
                  base_vars: dict[str, str]) -> tuple[dict[str, Any], float | None]:
        """The phase's rollback triggers, and when to look again because a breach is under way."""
        triggers: dict[str, Any] = {}
        recheck: float | None = None
        for trig in phase.rollback_triggers:
            try:
                triggers[trig.name] = engine.evaluate_trigger(trig, self.metrics, {**base_vars, "window": trig.for_},
                                                              max_age=parse_duration(spec.interval) / 4)
                soon = trigger_recheck_after(trig, triggers[trig.name])
                if soon is not None:
                    recheck = soon if recheck is None else min(recheck, soon)
            except Exception as e:  # noqa: BLE001
                log.warning(json.dumps({"msg": "trigger evaluation failed", "rollout": name, "error": str(e)}))
        return triggers, recheck

    def _pods(self, namespace: str, deployment: str, revision: str) -> Pods:
        dep = self.kube.deployment_state(namespace, deployment)
        if dep is None:
            return Pods(deployment, False, "not created yet")
        if dep.revision != revision:
            return Pods(deployment, False, f"still at revision {dep.revision}")
        return Pods(deployment, dep.rolled_out, dep.describe())

    def _replay(self, obj: dict[str, Any], spec: AgentRolloutSpec, phase: Any, revision: str) -> ReplayState:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        job_name = f"{name}-replay-{revision}"
        job = self.kube.get_job(ns, job_name)
        if job is None:
            job_body = objects.replay_job(job_name, name, revision, phase.replay, spec, owner_reference(obj))
            self.kube.create_job(ns, job_body)
            return "running"
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("status") == "True" and cond.get("type") == "Complete":
                return "succeeded"
            if cond.get("status") == "True" and cond.get("type") == "Failed":
                return "failed"
        return "running"

    # ------------------------------------------------------------------ people
    def _next_action(self, obj: dict[str, Any], status: AgentRolloutStatus,
                     people: Watched | None) -> dict[str, Any] | None:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        return next_action(self._listed("rolloutactions", ns, people), name, status.last_action)

    def _listed(self, plural: str, ns: str, people: Watched | None) -> list[dict[str, Any]]:
        if people is not None:
            return list(people.approvals if plural == "approvals" else people.actions)
        return self.kube.list(plural, ns)

    def _handled(self, obj: dict[str, Any], out: Outcome, action: dict[str, Any]) -> None:
        spec, meta = action["spec"], action["metadata"]
        outcome = action_outcome(out)
        out.status.last_action = handled(out.status.last_action, action, outcome)
        rid = "a-" + short_hash(meta.get("uid"), meta["name"], n=14)
        if out.action_note is not None:
            # The operator's own decision of this pass stays the operator's; the refusal gets its own record.
            if self._write_record(obj, rid, "action", spec["actor"], f"{spec['action']} {outcome}", out.status,
                                  None, None, {}):
                self.kube.event(obj, "Warning", "RolloutAction", f"[{rid}] {spec['action']} by {spec['actor']} "
                                f"{outcome}")
            return
        if out.record is None:
            out.record = "action"
        out.record_id = rid
        out.actor = spec["actor"]

    def _record_votes(self, obj: dict[str, Any], old: AgentRolloutStatus, out: Outcome, obs: Observation) -> None:
        """Each counted approval or rejection goes into the timeline once, under the reviewer's name."""
        prev = old.pending_approval
        seen = set(prev.approved_by) if prev is not None else set()
        for v in obs.votes:
            if v.decision == "approve" and v.approver in seen:
                continue
            assert prev is not None
            rid = "v-" + short_hash(prev.request_id, v.approver, v.decision, n=14)
            self._write_record(obj, rid, "approval" if v.decision == "approve" else "rejection", v.approver,
                               f"{v.decision} on {prev.request_id}", out.status, None, prev.request_id, {})

    # ------------------------------------------------------------------ persistence
    def _persist(self, obj: dict[str, Any], spec: AgentRolloutSpec, old: AgentRolloutStatus, out: Outcome,
                 owners: dict[str, str]) -> bool:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        if out.record is not None and out.record_id is not None:
            self._record(obj, spec, out, owners)
        # Most passes change nothing: comparing the models is a third of the price of dumping both.
        if out.status == old:
            return False
        new_dump, old_dump = dump_status(out.status), dump_status(old)
        if new_dump == old_dump:
            return False
        # Fields that vanished must be nulled explicitly in a merge patch.
        patch: dict[str, Any] = {k: None for k in old_dump if k not in new_dump}
        patch.update(new_dump)
        self.kube.patch_status("agentrollouts", ns, name, patch, obj["metadata"].get("resourceVersion"))
        return True

    def _record(self, obj: dict[str, Any], spec: AgentRolloutSpec, out: Outcome, owners: dict[str, str]) -> None:
        assert out.record_id is not None
        kind = out.record if out.record in ("decision", "approval-request", "action") else "decision"
        st = out.status
        created = self._write_record(obj, out.record_id, kind, out.actor or self.settings.identity, out.reason, st,
                                     out.decision, st.pending_approval.request_id if st.pending_approval else None,
                                     out.values)
        if created:
            reason = {"rollback": "RolledBack", "promote": "Promoted", "await_approval": "ApprovalRequested",
                      "hold": "Held"}.get(out.decision or "", "RolloutAction")
            self.kube.event(obj, out.event_type, reason, f"[{out.record_id}] {out.reason}")
            if out.decision is not None:
                metrics.observe_decision(obj["metadata"]["namespace"], obj["metadata"]["name"], out.decision)
            self._notify(obj, spec, out, owners)

    def _notify(self, obj: dict[str, Any], spec: AgentRolloutSpec, out: Outcome, owners: dict[str, str]) -> None:
        """Owners hear about rollbacks, pauses and approval requests, with the values that caused
        them. A pause is the failure policy's (spec.paused is a person's own doing): the canary
        stays where it is until someone restores its data or acts."""
        if self.notifier is None:
            return
        st = out.status
        kind: NotificationKind
        if out.decision == "rollback":
            kind, role, request = "rollback", "reliability", None
        elif out.decision == "hold" and st.state == "Paused" and not spec.paused:
            kind, role, request = "pause", "reliability", None
        elif out.record == "approval-request" and st.pending_approval is not None:
            kind, role, request = "approval_request", st.pending_approval.owner or "reliability", \
                st.pending_approval.request_id
        else:
            return
        contact = owners.get(role)
        self.notifier.submit(Notification(
            kind=kind, rollout=obj["metadata"]["name"], namespace=obj["metadata"]["namespace"],
            phase=st.phase or "", decision_id=out.record_id or "", reason=out.reason, values=out.values,
            owners=owners, escalate_to=[contact] if contact else [], approval_request_id=request))

    def _write_record(self, obj: dict[str, Any], rid: str, kind: str, actor: str, reason: str,
                      st: AgentRolloutStatus, decision: str | None, request_id: str | None,
                      values: dict[str, float | None]) -> bool:
        """Create one immutable timeline record; False if it exists (the step ran before a restart)."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        body = objects.decision_record(obj, rid, kind, actor, reason, st, decision, request_id, values,
                                       datetime.now(UTC))
        created = self.kube.create_record(ns, body)
        log.info(json.dumps({"msg": "decision", "id": rid, "rollout": f"{ns}/{name}", "kind": kind,
                             "decision": decision, "actor": actor, "phase": st.phase, "state": st.state,
                             "reason": reason, "values": body["spec"]["values"], "new": created}))
        return created

    def _invalid(self, obj: dict[str, Any], message: str, interval: float | None = None) -> PassResult:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        status = AgentRolloutStatus.model_validate(obj.get("status") or {})
        if status.message != message or status.observed_generation != obj["metadata"].get("generation"):
            now = now_utc()
            conds = [
                {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": message,
                 "lastTransitionTime": now.isoformat()},
                {"type": "Reconciling", "status": "False", "reason": "InvalidSpec", "message": "",
                 "lastTransitionTime": now.isoformat()},
                {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": message,
                 "lastTransitionTime": now.isoformat()},
            ]
            self.kube.patch_status("agentrollouts", ns, name, {
                "message": message, "conditions": conds, "observedGeneration": obj["metadata"].get("generation")})
        return PassResult(interval=interval or self.settings.default_gate_interval, error=message)

    def _router_failed(self, obj: dict[str, Any], status: AgentRolloutStatus, error: str,
                       interval: float) -> PassResult:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        message, patch = errors.refused_status(status, error, now_utc())
        if patch is not None:
            self.kube.patch_status("agentrollouts", ns, name, patch)
        log.warning(json.dumps({"msg": "router failed", "rollout": f"{ns}/{name}", "error": error}))
        return PassResult(interval=interval, error=message)


def world_error(e: RouterError | ApiException | ValidationError) -> str:
    """What status says when the world cannot be made to match it (see core.errors). What a
    retry can fix (conflicts, overload, a server error) is raised again, for the pass to be
    retried with backoff."""
    if isinstance(e, RouterError):
        return errors.router_refusal(e)
    if isinstance(e, ValidationError):
        return errors.client_refusal(e)
    said = errors.api_refusal(e.status, e.reason, e.body)
    if said is None:
        raise e
    return said


def _observe_metrics(namespace: str, name: str, old: AgentRolloutStatus, out: Outcome, obs: Observation,
                     written: bool) -> None:
    st = out.status
    waiting = st.pending_approval
    metrics.observe_status(namespace, name, st.phase, st.phase_index, st.canary_weight, st.state,
                           st.canary_revision, st.consecutive_no_data,
                           (waiting.phase, waiting.requested_at.timestamp()) if waiting is not None else None,
                           metrics.blocker_points(obs.gates))
    pending = old.pending_approval
    if written and pending is not None and out.decision == "promote":
        metrics.observe_approval_wait(namespace, name, pending.phase,
                                      (obs.now - pending.requested_at).total_seconds())


def _finalizing(status: AgentRolloutStatus) -> bool:
    return status.canary_revision is not None and status.canary_revision == status.stable_revision


def _canary_pod_count(spec: AgentRolloutSpec, status: AgentRolloutStatus, ratio: bool) -> int:
    """Pods the canary is asked for: enough for the weight decided, ahead of the traffic."""
    if status.canary_revision is None or status.state in ("RollingBack", "Degraded"):
        return 0
    return canary_replicas(spec.replicas, status.canary_weight or 0, ratio_router=ratio)


__all__ = ["Reconciler", "Settings", "PassResult", "Watched", "short_hash"]
