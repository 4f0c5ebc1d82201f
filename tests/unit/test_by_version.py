"""ByVersion keeps what a pass derives from a spec only while the object's spec cannot have changed."""

from __future__ import annotations

from typing import Any

import pytest

from launchgate.controller.reconcile import ByVersion

META = {"uid": "u1", "generation": 3}

# (what the second pass sees, its extra key parts, whether the first pass's value is reused)
CASES = [
    ("same uid and generation", META, (), True),
    ("a status write (new resourceVersion only)", {**META, "resourceVersion": "99"}, (), True),
    ("a spec change (new generation)", {"uid": "u1", "generation": 4}, (), False),
    ("deleted and re-created (new uid)", {"uid": "u2", "generation": 3}, (), False),
    ("something else it depends on changed", META, ("policy-b",), False),
    ("no uid: built by hand, never held", {"generation": 3}, (), False),
    ("no generation: never held", {"uid": "u1"}, (), False),
]


@pytest.mark.parametrize(("meta", "also", "reused"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_value_is_reused_only_for_the_same_version(meta: dict[str, Any], also: tuple[str, ...],
                                                      reused: bool) -> None:
    held, made = ByVersion(), []

    def make() -> object:
        made.append(object())
        return made[-1]

    first = held.get("k", META, make, "policy-a")
    second = held.get("k", meta, make, *(also or ("policy-a",)))
    assert (second is first) is reused
    assert len(made) == (1 if reused else 2)


def test_forget_drops_the_value_and_keys_do_not_mix() -> None:
    held = ByVersion()
    a = held.get("a", META, lambda: "A")
    assert held.get("b", META, lambda: "B") == "B"
    assert held.get("a", META, lambda: "other") == a
    held.forget("a")
    assert held.get("a", META, lambda: "again") == "again"


def test_a_failure_is_not_held() -> None:
    """An invalid spec is reported again on every pass: validation errors are not kept."""
    held, calls = ByVersion(), []

    def bad() -> str:
        calls.append(1)
        raise ValueError("invalid")

    for _ in range(2):
        with pytest.raises(ValueError):
            held.get("k", META, bad)
    assert len(calls) == 2
