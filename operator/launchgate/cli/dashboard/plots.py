"""Each blocker's value over a rollout's time, from Prometheus, for the rollout page's plots.

The queries are the gate's own, rendered by the engine with the rollout's variables exactly as
the operator renders them for a pass ($namespace, $rollout, $stable, $canary; $version bound to the
canary, and to stable for a ratio's baseline), and sent as range queries through the operator's
PrometheusSource: what is drawn is what the gate judged, not a look-alike query. The target is a
line: a constant, or for a baseline ratio the baseline's own range scaled by the ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from launchgate.adapters.prometheus import PrometheusSource
from launchgate.api import Blocker, LaunchGateSpec
from launchgate.cli.dashboard.view import Marker
from launchgate.core.engine import gate_variables, render_blocker
from launchgate.core.gates import describe_target, is_ratio, target_kind
from launchgate.core.promql import TemplateError

MAX_POINTS = 240
"""Points per plot: enough to see a phase's shape, few enough for Prometheus and the page."""


@dataclass
class Plot:
    gate: str
    blocker: str
    target: str
    query: str
    times: list[float]
    values: list[float | None]
    target_line: list[float | None]
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "blocker": self.blocker, "target": self.target, "query": self.query,
                "times": self.times, "values": self.values, "targetLine": self.target_line, "note": self.note,
                "points": sum(v is not None for v in self.values)}


def step_for(start: datetime, end: datetime, max_points: int = MAX_POINTS) -> float:
    """Whole seconds between points: at most `max_points` of them, and at least one second."""
    return float(max(1, math.ceil((end - start).total_seconds() / max_points)))


def rollout_variables(obj: Mapping[str, Any], canary: str | None) -> dict[str, str]:
    """The variables a pass binds for this rollout (controller/reconcile.py does the same)."""
    meta, st = obj.get("metadata") or {}, obj.get("status") or {}
    out = {"namespace": str(meta.get("namespace", "")), "rollout": str(meta.get("name", "")),
           "stable": str(st.get("stableRevision") or "")}
    if canary:
        out["canary"] = canary
    return out


def _series(raw: Any, times: Sequence[float]) -> tuple[list[float | None], str]:
    """The first series of a matrix answer on the plot's time grid (None where it has no sample),
    and a note when the answer had none or several."""
    if raw.error is not None:
        return [None] * len(times), str(raw.error)
    result = (raw.data or {}).get("result") or []
    if not result:
        return [None] * len(times), "no data in this range"
    by_t: dict[int, float | None] = {}
    for t, v in result[0].get("values") or []:
        f = float(v)
        by_t[round(float(t) * 1000)] = f if math.isfinite(f) else None
    note = f"{len(result)} series; the first is drawn" if len(result) > 1 else ""
    return [by_t.get(round(t * 1000)) for t in times], note


def blocker_plot(source: PrometheusSource, gate: str, spec: LaunchGateSpec, blocker: Blocker,
                 variables: Mapping[str, str], start: datetime, end: datetime, step: float) -> Plot:
    n = int((end - start).total_seconds() // step) + 1
    times = [start.timestamp() + i * step for i in range(n)]
    target = describe_target(blocker.target)
    counts = blocker.count_queries()
    if counts is not None:
        # A count blocker's target is on the proportion events / total: that is what is drawn.
        blocker = blocker.model_copy(update={"query": f"({counts[0]}) / ({counts[1]})", "successes": None,
                                             "errors": None, "total": None})
    try:
        q = render_blocker(blocker, gate_variables(spec, variables))
    except TemplateError as e:
        return Plot(gate, blocker.name, target, blocker.query or "", times, [None] * n, [None] * n, str(e))
    values, note = _series(source.query_range_raw(q.canary, start, end, step), times)
    kind = target_kind(blocker.target)
    bound = blocker.target.model_dump(by_alias=True).get(kind) if kind else None
    line: list[float | None]
    if is_ratio(blocker.target) and q.baseline is not None and bound is not None:
        base, base_note = _series(source.query_range_raw(q.baseline, start, end, step), times)
        line = [None if b is None else b * float(bound) for b in base]
        if base_note:
            note = "; ".join(x for x in (note, f"baseline: {base_note}") if x)
    else:
        line = [None if bound is None else float(bound)] * n
    return Plot(gate, blocker.name, target, q.canary, times, values, line, note)


def rollout_plots(source: PrometheusSource, obj: Mapping[str, Any], gates: Mapping[str, Mapping[str, Any] | None],
                  canary: str | None, start: datetime, end: datetime, markers: Sequence[Marker]) -> dict[str, Any]:
    """Every blocker of every gate the rollout's phases use, over [start, end], as JSON for the
    page: the plots, and the phase changes to mark on them."""
    step = step_for(start, end)
    variables = rollout_variables(obj, canary)
    jobs: list[tuple[str, LaunchGateSpec, Blocker]] = []
    problems: list[dict[str, str]] = []
    for name, gobj in gates.items():
        if gobj is None:
            continue
        try:
            spec = LaunchGateSpec.model_validate(gobj.get("spec") or {})
        except ValidationError as e:
            problems.append({"gate": name, "note": f"spec not understood: {e.errors()[0].get('msg', e)}"})
            continue
        jobs.extend((name, spec, b) for b in spec.blockers)
    with ThreadPoolExecutor(max_workers=4) as pool:
        plots = list(pool.map(lambda j: blocker_plot(source, j[0], j[1], j[2], variables, start, end, step), jobs))
    return {"start": start.timestamp(), "end": end.timestamp(), "step": step, "canary": canary,
            "plots": [p.to_json() for p in plots], "problems": problems,
            "markers": [{"at": m.at, "label": m.label} for m in markers]}
