"""Operator start-up details that need no cluster."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest

from launchgate.controller.main import _QuietSuccess, fewer_gc_passes


@pytest.mark.parametrize("level, message, kept", [
    (logging.INFO, "Handler 'rollout_event' succeeded.", False),
    (logging.INFO, "Handler 'rollout_event' failed temporarily: boom", True),
    (logging.ERROR, "Handler 'rollout_event' succeeded.", True),  # never hide a non-INFO record
    (logging.INFO, "Adding the finalizer", True),
])
def test_only_kopf_success_lines_are_dropped(level: int, message: str, kept: bool) -> None:
    record = logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)
    assert _QuietSuccess().filter(record) is kept


def test_start_up_objects_leave_the_collectors_walks_and_young_collections_are_rarer() -> None:
    before = gc.get_threshold()
    try:
        fewer_gc_passes(young=12_345, middle=21)
        assert gc.get_threshold() == (12_345, 21, before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_no_handler_needs_kopfs_last_handled_configuration() -> None:
    """NoDiffBase skips Kopf's per-event diff base because only event and index handlers exist.
    An on.create/on.update/on.resume/daemon handler would get a diff against nothing: then the
    real storage has to come back (kopf.AnnotationsDiffBaseStorage)."""
    import kopf

    from launchgate.controller import handlers

    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers()  # the handlers module did register into it
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
    body = kopf.Body({"metadata": {"name": "x", "annotations": {"launchgate.dev/last-handled-configuration": "{}"}},
                      "spec": {"a": 1}})
    storage = handlers.NoDiffBase()
    assert storage.build(body=body) is None and storage.fetch(body=body) is None


def test_only_kinds_with_few_objects_are_kopf_indexed() -> None:
    """Until every object of an indexed kind is indexed, Kopf holds every watched object's worker,
    and each indexed object wakes all of them twice: with a LaunchGate index, a start among 10,000
    rollouts spends ~100 s at 100% CPU before its first pass (see BENCHMARKS.md). Gates are read
    from the scheduler's bodies instead (handlers._gate_body)."""
    import kopf

    from launchgate.controller import handlers

    indexed = {h.id: h.selector.any_name for h in kopf.get_default_registry()._indexing.get_all_handlers()}
    assert sorted(indexed.values()) == ["approvals", "rolloutactions"]
    assert set(indexed) == set(handlers.INDEXES)


def test_api_retries_never_run_out_and_each_request_starts_from_the_shortest_delay() -> None:
    """Kopf reads the delays once per request and gives up when they run out (after 9 attempts by
    default); the integration test test_the_operator_outlives_an_api_server_outage shows it live."""
    import collections.abc
    import itertools

    from launchgate.controller.handlers import RetryForever

    delays = RetryForever(4.0)
    assert not isinstance(delays, collections.abc.Sized)  # Kopf would count the attempts
    first = list(itertools.islice(delays, 12))
    assert first == [1, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4]
    assert list(itertools.islice(delays, 12)) == first  # a fresh iteration for the next request
    assert list(itertools.islice(RetryForever(0.5), 3)) == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="LAUNCHGATE_API_RETRY_MAX_DELAY"):
        RetryForever(0)


def test_the_credential_refresh_hook_runs_once_per_period() -> None:
    from launchgate.adapters.kube import throttled

    calls: list[float] = []
    now = [0.0]
    hook = throttled(lambda cfg: calls.append(now[0]), every=10.0, clock=lambda: now[0])
    for t in (0.0, 5.0, 9.99, 10.0, 19.9, 20.0, 45.0):
        now[0] = t
        hook(None)
    assert calls == [0.0, 10.0, 20.0, 45.0]


def test_a_kubeconfig_token_still_authenticates_with_the_throttled_hook(tmp_path: Path) -> None:
    import yaml

    from launchgate.adapters.kube import load_config

    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }))
    cfg = load_config(str(path)).configuration
    assert cfg.refresh_api_key_hook is not None
    for _ in range(3):  # the first call refreshes, the next two are within the period
        assert cfg.auth_settings()["BearerToken"]["value"] == "Bearer s3cret"
    assert cfg.host == "https://127.0.0.1:6443"
