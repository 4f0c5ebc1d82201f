"""Operator start-up details that need no cluster."""

from __future__ import annotations

import logging

import pytest

from launchgate.main import _QuietSuccess


@pytest.mark.parametrize("level, message, kept", [
    (logging.INFO, "Handler 'rollout_event' succeeded.", False),
    (logging.INFO, "Handler 'rollout_event' failed temporarily: boom", True),
    (logging.ERROR, "Handler 'rollout_event' succeeded.", True),  # never hide a non-INFO record
    (logging.INFO, "Adding the finalizer", True),
])
def test_only_kopf_success_lines_are_dropped(level: int, message: str, kept: bool) -> None:
    record = logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)
    assert _QuietSuccess().filter(record) is kept
