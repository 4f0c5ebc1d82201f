"""Fixtures that give integration tests the real thing: etcd + kube-apiserver, the controllers
(kube-controller-manager, kube-scheduler, kwok's fake Nodes) + Prometheus.

The processes come from launchgate_dev.devenv (binaries built by `make testenv`). They are started
once per session because kube-apiserver takes seconds to become ready; tests isolate themselves
with their own namespaces, scrape-target names and metric names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from launchgate_dev import devenv

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration, so `-m "not integration"` selects the unit tests."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def devenv_binaries() -> devenv.Binaries:
    """The cached binaries; a missing one FAILS the tests (with the `make testenv` hint) rather than
    skipping them, so a half-installed machine can never report a green run."""
    try:
        return devenv.binaries()
    except devenv.DevEnvError as e:
        missing = str(e)
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def control_plane(devenv_binaries: devenv.Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[devenv.ControlPlane]:
    """A started control plane with crds/ (if generated) and the Gateway API CRDs installed.

    For the session, KUBECONFIG points at it (so no test can reach a real cluster by accident) and
    the cluster's own kubectl comes first on PATH (tests run `kubectl` as a user would).
    """
    cp = devenv.ControlPlane(tmp_path_factory.mktemp("controlplane"), bins=devenv_binaries)
    with pytest.MonkeyPatch.context() as mp:
        cp.start()
        try:
            mp.setenv("KUBECONFIG", str(cp.kubeconfig))
            mp.setenv("PATH", f"{devenv_binaries.kubectl.parent}{os.pathsep}{os.environ.get('PATH', '')}")
            if any(devenv.REPO_CRDS.glob("*.yaml")):
                cp.apply_crds([devenv.REPO_CRDS])
            cp.install_gateway_api()
            yield cp
        finally:
            cp.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: devenv.ControlPlane) -> Path:
    """Path of the admin kubeconfig (contexts: admin, launchgate-operator, alice, bob, carol, mallory)."""
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def prometheus(devenv_binaries: devenv.Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[devenv.PrometheusServer]:
    """A Prometheus scraping every second; register targets with add_target()/remove_target()."""
    prom = devenv.PrometheusServer(tmp_path_factory.mktemp("prometheus"), scrape_interval="1s",
                                   evaluation_interval="1s", bins=devenv_binaries)
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()
