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
