"""The dashboard's web app: server-rendered pages, live through server-sent events, read-only.

Pages are Jinja2 templates rendered on the server; the browser gets HTML, a small script and the
vendored uPlot for the plots, with no build step. Each open page holds one event stream, fed by
API server watches made with the user's credentials: when a watched object changes, the server
renders the page's live part again and sends it, so a promotion shows without a reload. There are
no write routes at all (approving stays in `kubectl launchgate approve`, where the API server
authenticates the approver).

Blocking work (the kubernetes client, Prometheus) runs in worker threads: sync endpoints run in
Starlette's thread pool, and the event streams hand theirs to `anyio.to_thread`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from launchgate import __version__
from launchgate.adapters.prometheus import PrometheusSource
from launchgate.cli.dashboard import view
from launchgate.cli.dashboard.kube import RECORD_LABEL, Forbidden, NotFound, Reader
from launchgate.cli.dashboard.plots import rollout_plots

HERE = Path(__file__).resolve().parent
KEEPALIVE = 15.0
"""Seconds between comment lines on an idle event stream, so proxies and browsers keep it open."""
COALESCE = 0.2
"""A burst of watch events (a pass writes status, a record, a gate) becomes one page update."""


@dataclass
class Settings:
    reader: Reader
    prometheus: PrometheusSource | None
    user: str
    default_namespace: str | None
    """The namespace the overview opens on; None: all the user may list."""


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["since"] = lambda t: view.since(t, datetime.now(UTC))
    env.filters["iso"] = lambda t: t.isoformat() if t else ""
    env.filters["clock"] = lambda t: t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if t else "-"
    env.filters["number"] = view.number
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
    env.globals["version"] = __version__
    return env


def _sse(event: str, data: str) -> str:
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"


class Pages:
    def __init__(self, s: Settings) -> None:
        self.s, self.env = s, _env()

    def render(self, template: str, **ctx: Any) -> str:
        return self.env.get_template(template).render(user=self.s.user, server=self.s.reader.server, **ctx)

    # ------------------------------------------------------------------ overview
    def _namespace(self, request: Request) -> str | None:
        ns = request.query_params.get("namespace")
        if ns is None:
            return self.s.default_namespace
        return ns or None

    def overview_body(self, namespace: str | None) -> str:
        try:
            listing = self.s.reader.rollouts(namespace)
            rows, error = view.overview(listing.items), ""
        except Forbidden as e:
            rows, error = [], f"forbidden: {e}"
        return self.render("_overview.html", rows=rows, error=error, namespace=namespace)

    def overview(self, request: Request) -> Response:
        namespace = self._namespace(request)
        names, _ = self.s.reader.namespaces()
        if namespace and namespace not in names:
            names = sorted([*names, namespace])
        live = "/events/overview?" + ("namespace=" + namespace if namespace else "namespace=")
        return HTMLResponse(self.render("overview.html", namespaces=names, namespace=namespace, live=live,
                                        body=self.overview_body(namespace)))

    # ------------------------------------------------------------------ one rollout
    def _gates(self, ns: str, obj: dict[str, Any]) -> dict[str, tuple[dict[str, Any] | None, str]]:
        out: dict[str, tuple[dict[str, Any] | None, str]] = {}
        for phase in view.phases_of(obj):
            for g in phase.gates:
                if g in out:
                    continue
                try:
                    out[g] = (self.s.reader.get("launchgates", ns, g), "")
                except (Forbidden, NotFound) as e:
                    out[g] = (None, str(e))
        return out

    def _records(self, ns: str, obj: dict[str, Any]) -> tuple[list[view.TimelineEntry], str]:
        try:
            recs = self.s.reader.records(ns, obj["metadata"]["name"], obj["metadata"].get("uid"))
        except Forbidden as e:
            return [], f"forbidden: {e}"
        return view.timeline(recs), ""

    def rollout_body(self, ns: str, name: str) -> str:
        try:
            obj = self.s.reader.get("agentrollouts", ns, name)
        except (Forbidden, NotFound) as e:
            return self.render("_rollout.html", error=str(e), ns=ns, name=name)
        gates = [view.gate_view(g, o, err) for g, (o, err) in self._gates(ns, obj).items()]
        entries, records_error = self._records(ns, obj)
        return self.render("_rollout.html", error="", ns=ns, name=name, row=view.overview_row(obj),
                           steps=view.progress(obj), gates=gates, timeline=entries, records_error=records_error,
                           pending=(obj.get("status") or {}).get("pendingApproval"),
                           markers=[m.at for m in view.phase_markers(entries)])

    def rollout(self, request: Request) -> Response:
        ns, name = request.path_params["namespace"], request.path_params["name"]
        return HTMLResponse(self.render("rollout.html", ns=ns, name=name, body=self.rollout_body(ns, name),
                                        live=f"/events/rollouts/{ns}/{name}", plots=f"/api/plots/{ns}/{name}",
                                        prometheus=self.s.prometheus is not None))

    def plots(self, request: Request) -> Response:
        ns, name = request.path_params["namespace"], request.path_params["name"]
        if self.s.prometheus is None:
            return JSONResponse({"plots": [], "error": "no Prometheus: start the dashboard with --prometheus URL"})
        try:
            obj = self.s.reader.get("agentrollouts", ns, name)
        except (Forbidden, NotFound) as e:
            return JSONResponse({"plots": [], "error": str(e)}, status_code=403 if isinstance(e, Forbidden) else 404)
        entries, _ = self._records(ns, obj)
        now = datetime.now(UTC)
        start, end = view.plot_range(obj, entries, now)
        st = obj.get("status") or {}
        canary = st.get("canaryRevision") or next((e.revision for e in entries if e.kind == "decision"), None)
        gates = {g: o for g, (o, _) in self._gates(ns, obj).items()}
        return JSONResponse(rollout_plots(self.s.prometheus, obj, gates, canary, start, end,
                                          view.phase_markers(entries)))

    # ------------------------------------------------------------------ live updates
    def _stream(self, request: Request, start_watches: Callable[[Callable[[], None], threading.Event], None],
                render: Callable[[], str]) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            loop = asyncio.get_running_loop()
            changed = asyncio.Event()
            stop = threading.Event()

            def on_change() -> None:
                loop.call_soon_threadsafe(changed.set)

            try:
                await anyio.to_thread.run_sync(start_watches, on_change, stop)
                yield ": connected\n\n"
                last = None
                while True:
                    try:
                        await asyncio.wait_for(changed.wait(), timeout=KEEPALIVE)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    await asyncio.sleep(COALESCE)
                    changed.clear()
                    html = await anyio.to_thread.run_sync(render)
                    if html != last:
                        last = html
                        yield _sse("update", html)
            finally:
                stop.set()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def overview_events(self, request: Request) -> StreamingResponse:
        namespace = request.query_params.get("namespace") or None

        def start(on_change: Callable[[], None], stop: threading.Event) -> None:
            try:
                listing = self.s.reader.rollouts(namespace)
            except Forbidden:
                return
            self.s.reader.watch_rollouts(listing, on_change, stop)

        return self._stream(request, start, lambda: self.overview_body(namespace))

    def rollout_events(self, request: Request) -> StreamingResponse:
        ns, name = request.path_params["namespace"], request.path_params["name"]

        def start(on_change: Callable[[], None], stop: threading.Event) -> None:
            r = self.s.reader
            r.watch("agentrollouts", ns, on_change, stop, field_selector=f"metadata.name={name}")
            r.watch("launchgates", ns, on_change, stop)
            r.watch("decisionrecords", ns, on_change, stop, label_selector=f"{RECORD_LABEL}={name}")

        return self._stream(request, start, lambda: self.rollout_body(ns, name))


def create_app(settings: Settings, allowed_hosts: list[str]) -> Starlette:
    """The app. `allowed_hosts` are the names the page is served under (loopback): any other Host
    header is refused, so a web page elsewhere cannot reach this one through DNS rebinding and read
    what the user's credentials can see."""
    pages = Pages(settings)
    routes = [
        Route("/", pages.overview),
        Route("/rollouts/{namespace}/{name}", pages.rollout),
        Route("/api/plots/{namespace}/{name}", pages.plots),
        Route("/events/overview", pages.overview_events),
        Route("/events/rollouts/{namespace}/{name}", pages.rollout_events),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)])
