"""kstatus' verdict (what Flux and `kubectl wait` read) for a launchgate object, shared by the unit
tests of the health scripts and the end-to-end tests of real statuses."""

from __future__ import annotations

from typing import Any


def kstatus(obj: dict[str, Any]) -> str:
    """kstatus' verdict for a custom resource, by cli-utils' generic rules (checkGenericProperties):
    a deletion mark, then observedGeneration, then the Reconciling and Stalled conditions; a kind
    it has no rules of its own for is Current otherwise. Ready is not read."""
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    st = obj.get("status") or {}
    if st.get("observedGeneration") != obj["metadata"].get("generation"):
        return "InProgress"
    conds = {c["type"]: c["status"] for c in st.get("conditions", [])}
    if conds.get("Stalled") == "True":
        return "Failed"
    if conds.get("Reconciling") == "True":
        return "InProgress"
    return "Current"
