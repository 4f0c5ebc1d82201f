"""The Gateway API router: the canary's share is its backendRef weight in the user's HTTPRoute."""

from __future__ import annotations

import copy
from typing import Any

from launchgate.adapters.kube import Kube
from launchgate.api.names import service_names
from launchgate.core.protocols import RouterError

FIELD = "spec.trafficRouting.gatewayAPI.httpRoute"
"""Where the user names the route: every failure of this router is said against it."""


class GatewayAPIRouter:
    """Sets the stable/canary backendRefs weights of a Gateway API HTTPRoute.

    Only the `weight` of the two backendRefs that name the rollout's Services is changed; every
    other field of the user's route is left as it is (GitOps tools should ignore these weights).
    """

    ratio_router = False

    def __init__(self, kube: Kube, route: str) -> None:
        self.kube = kube
        self.route = route

    def set_weight(self, namespace: str, rollout: str, weight: int) -> bool:
        try:
            route = self.kube.get_httproute(namespace, self.route)
        except Exception as e:  # noqa: BLE001 - any API failure is a router failure to retry
            raise RouterError(f"reading HTTPRoute {self.route}: {e}", FIELD) from e
        if route is None:
            raise RouterError(f"HTTPRoute {namespace}/{self.route} not found", FIELD)
        updated, changed = with_weights(route, rollout, weight)
        if not changed:
            return False
        try:
            self.kube.replace_httproute(namespace, updated)
        except Exception as e:  # noqa: BLE001
            raise RouterError(f"updating HTTPRoute {self.route}: {e}", FIELD) from e
        return True


def with_weights(route: dict[str, Any], rollout: str, weight: int) -> tuple[dict[str, Any], bool]:
    """The route with stable = 100 - weight and canary = weight in every rule that routes to them.

    A rule that names only the stable Service gets the canary backendRef added, so a user can write
    the route they had before launchgate and the operator completes it.
    """
    stable, canary = service_names(rollout)
    out = copy.deepcopy(route)
    changed = False
    rules = out.get("spec", {}).get("rules", [])
    found = False
    for rule in rules:
        refs = rule.setdefault("backendRefs", [])
        names = [r.get("name") for r in refs]
        if stable not in names:
            continue
        found = True
        if canary not in names:
            port = next((r.get("port") for r in refs if r.get("name") == stable), None)
            ref: dict[str, Any] = {"name": canary, "weight": 0}
            if port is not None:
                ref["port"] = port
            refs.append(ref)
            changed = True
        for r in refs:
            want = 100 - weight if r.get("name") == stable else weight if r.get("name") == canary else None
            if want is not None and r.get("weight") != want:
                r["weight"] = want
                changed = True
    if not found:
        raise RouterError(f"HTTPRoute {route['metadata']['name']} has no backendRef to Service {stable}", FIELD)
    return out, changed
