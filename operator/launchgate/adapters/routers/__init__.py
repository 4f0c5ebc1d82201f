"""Traffic routers behind one small interface, so Istio or others can follow.

A router only sets the canary's share of live traffic; scaling is the reconciler's job. Setting a
weight is idempotent: the reconciler calls it every pass with what status says.
"""

from __future__ import annotations

from launchgate.adapters.kube import Kube
from launchgate.adapters.routers.gatewayapi import GatewayAPIRouter
from launchgate.adapters.routers.replicaratio import ReplicaRatioRouter
from launchgate.api import AgentRolloutSpec
from launchgate.core.protocols import TrafficRouter


def router_for(spec: AgentRolloutSpec, kube: Kube) -> TrafficRouter:
    tr = spec.traffic_routing
    if tr.gateway_api is not None:
        return GatewayAPIRouter(kube, tr.gateway_api.http_route)
    return ReplicaRatioRouter()
