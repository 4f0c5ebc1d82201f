"""Names of the objects the operator creates for a rollout, shared by the controller and the routers."""

from __future__ import annotations


def service_names(rollout: str) -> tuple[str, str]:
    return f"{rollout}-stable", f"{rollout}-canary"
