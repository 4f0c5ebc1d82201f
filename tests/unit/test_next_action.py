"""Which RolloutAction acts next: each once, in the order the apiserver stored them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from launchgate.api import LastAction
from launchgate.core.actions import next_action


def action(name: str, created: str, rv: str, rollout: str = "r", verb: str = "promote") -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created, "resourceVersion": rv},
            "spec": {"rollout": rollout, "action": verb, "actor": "carol"}}


def last(name: str, created: str, same: tuple[str, ...] = ()) -> LastAction:
    return LastAction(name=name, action="retry", actor="carol",
                      created=datetime.fromisoformat(created.replace("Z", "+00:00")),
                      handled_same_second=list(same))


T0, T1 = "2026-11-24T18:48:59Z", "2026-11-24T18:49:00Z"
RETRY = action("r-retry-scnq2", T0, "120", verb="retry")
PROMOTE = action("r-promote-a1b2c", T0, "131")          # same second, name sorts before the retry's
ABORT = action("r-abort-zzzzz", T0, "140", verb="abort")
LATER = action("r-promote-later", T1, "150")
OTHER = action("other-promote-x", T0, "100", rollout="other")


@pytest.mark.parametrize("actions,done,expected", [
    ([], None, None),
    ([OTHER], None, None),                                    # another rollout's action
    ([PROMOTE, RETRY], None, RETRY),                          # a tie goes to the one stored first
    ([RETRY, PROMOTE], last("r-retry-scnq2", T0), PROMOTE),  # sent in the retry's second: not lost
    ([RETRY, PROMOTE, ABORT], last("r-promote-a1b2c", T0, ("r-retry-scnq2",)), ABORT),
    ([RETRY, PROMOTE, ABORT], last("r-abort-zzzzz", T0, ("r-retry-scnq2", "r-promote-a1b2c")), None),
    ([RETRY, LATER], last("r-retry-scnq2", T0), LATER),
    ([RETRY, LATER], last("r-promote-later", T1), None),     # older than the last handled
    ([action("a", T0, ""), action("b", T0, "")], None, "a"),  # no resourceVersion: by name
])
def test_the_next_action_is_the_oldest_not_yet_handled(actions: list[dict[str, Any]], done: LastAction | None,
                                                       expected: dict[str, Any] | str | None) -> None:
    got = next_action(actions, "r", done)
    if isinstance(expected, str):
        assert got is not None and got["metadata"]["name"] == expected
    else:
        assert got == expected
