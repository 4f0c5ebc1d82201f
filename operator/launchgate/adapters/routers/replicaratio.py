"""The replica-ratio router: for queue-consuming agents with no HTTP routing."""

from __future__ import annotations


class ReplicaRatioRouter:
    """Queue-consuming agents have no HTTP routing: their share is their share of the replicas."""

    ratio_router = True

    def set_weight(self, namespace: str, rollout: str, weight: int) -> bool:
        return False
