"""Operator start-up details that need no cluster."""

from __future__ import annotations

import gc
import logging

import pytest

from launchgate.main import _QuietSuccess, fewer_gc_passes


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

    from launchgate import handlers

    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers()  # the handlers module did register into it
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
    body = kopf.Body({"metadata": {"name": "x", "annotations": {"launchgate.dev/last-handled-configuration": "{}"}},
                      "spec": {"a": 1}})
    storage = handlers.NoDiffBase()
    assert storage.build(body=body) is None and storage.fetch(body=body) is None

