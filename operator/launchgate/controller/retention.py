"""The operator's part of the timeline's retention path: DecisionRecords older than
LAUNCHGATE_RECORD_RETENTION are deleted, each in a JSON log line and, per rollout, in an Event.

This is the only place the operator deletes a record, and it runs only when a retention is set:
the launchgate-decision-records admission policy refuses every other delete (a cluster-admin's
too), and RBAC grants the operator `delete` on records only with the retention
(manifests/retention, the chart's recordRetention). A record deleted here says so twice, so its
absence from the timeline is never silent: the log line names the record and what it recorded,
and the Event is about the AgentRollout the record was about, in its namespace, whether that
rollout still exists or not.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from launchgate import GROUP, VERSION
from launchgate.adapters.kube import Kube
from launchgate.adapters.kube_objects import ROLLOUT, record_rollout_uid
from launchgate.core.durations import format_duration
from launchgate.core.retention import expired, sweep_every

log = logging.getLogger("launchgate.retention")

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SHOWN = 20
"""Record names an Event lists; the log has every one."""


class Retention:
    """Deletes the expired records of the namespaces the operator watches (all when none are
    named). Blocking: run `sweep` in a worker thread, as a pass is."""

    def __init__(self, kube: Kube, retention: float, namespaces: Sequence[str] = ()) -> None:
        self.kube = kube
        self.retention = retention
        self.spelled = format_duration(retention)
        patterns = [p.strip() for n in namespaces for p in n.split(",") if p.strip()]
        # Plain names are listed one by one (a Role per namespace is enough); Kopf's glob patterns
        # and negations need one cluster-wide LIST, filtered here.
        plain = bool(patterns) and all(_NAME.match(p) for p in patterns)
        self.scopes: list[str | None] = list(patterns) if plain else [None]
        self.patterns = [] if plain else patterns

    def watched(self, namespace: str) -> bool:
        included = [p for p in self.patterns if not p.startswith("!")]
        excluded = [p[1:] for p in self.patterns if p.startswith("!")]
        return (not included or any(fnmatch.fnmatchcase(namespace, p) for p in included)) \
            and not any(fnmatch.fnmatchcase(namespace, p) for p in excluded)

    def sweep(self, now: datetime | None = None) -> int:
        """One look at every record in scope; how many were deleted. The Events go out even when a
        delete fails half-way, for the records deleted before it."""
        now = now or datetime.now(UTC)
        gone: dict[tuple[str, str, str | None], list[str]] = {}
        try:
            for scope in self.scopes:
                for page in self.kube.record_pages(scope):
                    for record in expired(page, self.retention, now):
                        self._delete(record, gone)
        finally:
            for (namespace, rollout, uid), names in gone.items():
                self._announce(namespace, rollout, uid, names)
        return sum(len(names) for names in gone.values())

    def _delete(self, record: Mapping[str, Any], gone: dict[tuple[str, str, str | None], list[str]]) -> None:
        meta, spec = record["metadata"], record.get("spec") or {}
        namespace, name = meta["namespace"], meta["name"]
        if not self.watched(namespace) or not self.kube.delete_record(namespace, name, meta.get("uid")):
            return
        rollout = str(spec.get("rollout") or (meta.get("labels") or {}).get(ROLLOUT) or name)
        uid = record_rollout_uid(dict(record))
        log.info(json.dumps({"msg": "decision record deleted", "reason": "retention", "retention": self.spelled,
                             "record": f"{namespace}/{name}", "id": spec.get("id"), "rollout": rollout,
                             "rolloutUid": uid, "kind": spec.get("kind"), "decision": spec.get("decision"),
                             "phase": spec.get("phase"), "actor": spec.get("actor"), "at": spec.get("at")}))
        gone.setdefault((namespace, rollout, uid), []).append(name)

    def _announce(self, namespace: str, rollout: str, uid: str | None, names: list[str]) -> None:
        # About the rollout by name and uid even once it is gone: `kubectl describe` shows the Event
        # on the rollout while it exists, `kubectl get events` in its namespace always.
        involved = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AgentRollout",
                    "metadata": {"name": rollout, "namespace": namespace, "uid": uid}}
        shown = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
        self.kube.event(involved, "Normal", "RecordsExpired",
                        f"{len(names)} DecisionRecord(s) older than the retention of {self.spelled} "
                        f"(LAUNCHGATE_RECORD_RETENTION) deleted: {shown}")


async def run(retention: Retention, leading: Callable[[], bool] | None = None) -> None:
    """Sweep at once and then every tenth of the retention (see `sweep_every`), for as long as
    the operator runs. A failed sweep is logged and tried again at the next. Under leader election
    only the leader sweeps (`leading`)."""
    every = sweep_every(retention.retention)
    while True:
        if leading is not None and not leading():
            await asyncio.sleep(min(every, 5.0))
            continue
        try:
            await asyncio.to_thread(retention.sweep)
        except Exception as e:  # noqa: BLE001 - a failed sweep must never stop the operator
            log.warning(json.dumps({"msg": "deleting expired decision records failed; trying again later",
                                    "error": repr(e), "detail": str(getattr(e, "body", "") or "")[:2000]}))
        await asyncio.sleep(every)
