"""What an AgentRollout's status says when the world cannot be made to match it."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from launchgate.adapters.routers.gatewayapi import GatewayAPIRouter
from launchgate.controller.reconcile import world_error
from launchgate.core.protocols import RouterError


def refused(status: int, message: str | None = None, reason: str = "Unprocessable Entity") -> ApiException:
    e = ApiException(status=status, reason=reason)
    e.body = json.dumps({"kind": "Status", "message": message}) if message is not None else None
    return e


INVALID = 'Deployment.apps "r-canary" is invalid: spec.template.spec.containers[0].name: Required value'


@pytest.mark.parametrize("error,expected", [
    (RouterError("HTTPRoute r not found"), "traffic router: HTTPRoute r not found"),
    (refused(422, INVALID), f"the API server refused a workload change: {INVALID}"),
    (refused(403, 'deployments.apps "r-canary" is forbidden: exceeded quota', "Forbidden"),
     'the API server refused a workload change: deployments.apps "r-canary" is forbidden: exceeded quota'),
    (refused(400, None, "Bad Request"), "the API server refused a workload change: 400 Bad Request"),
])
def test_refusals_are_said_in_status_with_the_servers_words(error: Exception, expected: str) -> None:
    assert world_error(error) == expected  # type: ignore[arg-type]


def test_a_body_the_api_client_refuses_names_the_field() -> None:
    from kubernetes import client
    from pydantic import ValidationError

    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "r-stable"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"image": "agent:1"}]}}}}
    api = client.AppsV1Api(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")))
    try:
        api.create_namespaced_deployment("ns", body)
    except ValidationError as e:
        said = world_error(e)
    except Exception as e:  # noqa: BLE001 - a client without body checks sends it (and cannot connect)
        pytest.skip(f"this kubernetes client does not check bodies: {type(e).__name__}")
    assert said.startswith("the API client refused a workload change")
    assert "spec.template.spec.containers[0].name: Field required" in said


@pytest.mark.parametrize("status", [409, 429, 404, 500, 503, None])
def test_what_a_retry_can_fix_is_raised_again(status: int | None) -> None:
    e = ApiException(status=status, reason="x")
    with pytest.raises(ApiException):
        world_error(e)


class Routes:
    """The one call the Gateway API router reads routes with, answered from a dict."""

    def __init__(self, **routes: dict) -> None:
        self.routes = routes

    def get_httproute(self, namespace: str, name: str) -> dict | None:
        return self.routes.get(name)


ROUTE_FIELD = "spec.trafficRouting.gatewayAPI.httpRoute"


@pytest.mark.parametrize("routes,said", [
    ({}, f"traffic router: {ROUTE_FIELD}: HTTPRoute ns/web not found"),
    ({"web": {"metadata": {"name": "web"}, "spec": {"rules": [{"backendRefs": [{"name": "other-stable"}]}]}}},
     f"traffic router: {ROUTE_FIELD}: HTTPRoute web has no backendRef to Service r-stable"),
])
def test_a_route_the_router_cannot_use_is_said_against_the_field_that_names_it(routes: dict, said: str) -> None:
    """The user fixes a missing or unrelated route where they named it: status says where."""
    with pytest.raises(RouterError) as e:
        GatewayAPIRouter(Routes(**routes), "web").set_weight("ns", "r", 5)  # type: ignore[arg-type]
    assert world_error(e.value) == said
