"""merged_patch: two queued status patches sent as one must leave the object as the two would have."""

from __future__ import annotations

from typing import Any

import pytest

from launchgate.adapters.kube import merged_patch


def apply(target: Any, patch: Any) -> Any:
    """RFC 7386 (JSON merge patch), as the API server applies a dict sent to /status."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = apply(out.get(k), v)
    return out


OBJECT = {"decision": "hold", "owners": {"reliability": "sre"}, "blockers": [{"name": "a"}], "message": "m"}

CASES = [
    ("the later full status wins", {"decision": "allow", "message": "x"}, {"decision": "block", "message": "y"}),
    ("keys only in the first stay", {"decision": "allow", "passing": 1}, {"message": "y"}),
    ("nested objects merge key by key", {"owners": {"product": "p"}}, {"owners": {"reliability": "r2"}}),
    ("lists are replaced, not merged", {"blockers": [{"name": "b"}, {"name": "c"}]}, {"blockers": []}),
    ("a null deletes, a later value sets again", {"message": None}, {"message": "back"}),
    ("a value, then a null, deletes", {"message": "set"}, {"message": None}),
    ("an object replaced by a scalar", {"owners": {"a": "b"}}, {"owners": "x"}),
    ("a scalar replaced by an object", {"message": "s"}, {"message": {"k": "v"}}),
]


@pytest.mark.parametrize(("first", "then"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_merged_patch_has_the_effect_of_both(first: dict[str, Any], then: dict[str, Any]) -> None:
    assert apply(OBJECT, merged_patch(first, then)) == apply(apply(OBJECT, first), then)


def test_the_patches_given_are_left_alone() -> None:
    first, then = {"owners": {"a": "1"}}, {"owners": {"b": "2"}}
    merged_patch(first, then)
    assert first == {"owners": {"a": "1"}} and then == {"owners": {"b": "2"}}
