"""Leader election on a `coordination.k8s.io/v1` Lease (the rules are in core.leadership).

One thread per process reads the Lease every retry period and writes it when it may hold it:
a create when there is none, else a replace carrying the resourceVersion it read, so of two
replicas writing in the same round the API server lets exactly one win (the other gets 409).
The operator asks `leading()` before every pass and right before every write (see
`Kube.fence`), so a replica that lost or cannot renew its Lease stops deciding at once, also in
the middle of a pass, and a replica woken from a pause finds itself not leading before it can
send anything.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from launchgate.adapters import metrics
from launchgate.core.leadership import LeaseRecord, LeaseTerms, Observation, claim, still_leading

log = logging.getLogger("launchgate.leader")


def _record(lease: Any) -> LeaseRecord | None:
    spec = lease.spec if lease is not None else None
    if spec is None:
        return None
    return LeaseRecord(holder=spec.holder_identity, lease_duration_seconds=spec.lease_duration_seconds,
                       acquire_time=spec.acquire_time, renew_time=spec.renew_time,
                       transitions=spec.lease_transitions or 0)


class LeaseElector:
    """Holds (or waits for) one Lease for this process; `leading()` is safe from any thread."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str, terms: LeaseTerms,
                 on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity, self.terms = namespace, name, identity, terms
        self._on_change = on_change
        self._clock = clock
        self._renew_sent_at: float | None = None
        self._was_leading = False
        self._seen = Observation()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def leading(self) -> bool:
        return still_leading(self._renew_sent_at, self._clock(), self.terms)

    def start(self) -> LeaseElector:
        self._thread = threading.Thread(target=self._run, name="launchgate-leader-election", daemon=True)
        self._thread.start()
        return self

    def stop(self, release: bool = True, timeout: float = 5.0) -> None:
        """Stop electing; a holder that stops in order gives the Lease up, so a standby takes over
        at its next attempt instead of a lease duration later (what client-go's ReleaseOnCancel does)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if release and self.leading():
            self._renew_sent_at = None
            self._announce()
            try:
                self._release()
            except (ApiException, HTTPError, OSError) as e:
                log.warning(json.dumps({"msg": "lease not released", "lease": self._where(), "error": str(e)}))

    def _where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.attempt()
            except (ApiException, HTTPError, OSError) as e:
                log.warning(json.dumps({"msg": "lease attempt failed", "lease": self._where(),
                                        "error": getattr(e, "reason", None) or str(e)}))
            self._announce()
            self._stop.wait(self.terms.retry_period)

    def attempt(self) -> bool:
        """One round: read the Lease, write it if this replica may hold it. True when it holds it now."""
        sent = self._clock()
        timeout = max(1.0, self.terms.retry_period)
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except ApiException as e:
            if e.status != 404:
                raise
            lease = None
        record = _record(lease)
        unchanged_for = self._seen.saw(record, sent)
        wanted = claim(record, self.identity, unchanged_for, self.terms, datetime.now(UTC))
        if wanted is None:
            self._renew_sent_at = None
            return False
        spec = client.V1LeaseSpec(holder_identity=wanted.holder, lease_duration_seconds=wanted.lease_duration_seconds,
                                  acquire_time=wanted.acquire_time, renew_time=wanted.renew_time,
                                  lease_transitions=wanted.transitions)
        try:
            if lease is None:
                body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace), spec=spec)
                self.coordination.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
            else:
                lease.spec = spec
                self.coordination.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=timeout)
        except ApiException as e:
            if e.status not in (409, 422):
                raise
            return False  # another replica wrote first: it holds the Lease this round
        self._renew_sent_at = sent
        self._seen.saw(wanted, sent)
        return True

    def _release(self) -> None:
        lease = self.coordination.read_namespaced_lease(self.name, self.namespace, _request_timeout=2.0)
        if lease.spec is None or lease.spec.holder_identity != self.identity:
            return
        lease.spec.holder_identity = None
        lease.spec.renew_time = datetime.now(UTC)
        self.coordination.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=2.0)

    def _announce(self) -> None:
        now = self.leading()
        metrics.observe_leading(now)
        if now == self._was_leading:
            return
        self._was_leading = now
        log.info(json.dumps({"msg": "leading" if now else "not leading", "lease": self._where(),
                             "identity": self.identity}))
        if self._on_change is not None:
            self._on_change(now)
