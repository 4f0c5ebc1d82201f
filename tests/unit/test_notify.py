"""Owner notifications against a real HTTP receiver on 127.0.0.1: payloads, retries, the async dispatcher."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from launchgate.adapters.notify import (
    AsyncDispatcher,
    Notification,
    WebhookNotifier,
    build_payload,
    dispatcher_from_config,
)
from launchgate.config import Config

AT = datetime(2026, 4, 1, 12, 0, 0, tzinfo=UTC)


def note(kind: str = "rollback", decision_id: str = "d-1", **kw: Any) -> Notification:
    base: dict[str, Any] = dict(
        kind=kind, rollout="support-agent", namespace="agents", phase="Canary1", decision_id=decision_id,
        reason="error rate 2.4x baseline for 10m", values={"error_ratio": 2.4, "p95_latency_ms": float("nan")},
        owners={"reliability": "sre-oncall", "governance": "ai-governance"}, escalate_to=["sre-oncall"], at=AT,
    )
    base.update(kw)
    return Notification(**base)


class Receiver:
    """A webhook receiver that answers with scripted statuses (then 200) and records every request."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(outer.delay)
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": json.loads(body)})
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/SECRET"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- payloads


def test_json_payload_over_http(receiver: Receiver) -> None:
    n = note("approval_request", approval_request_id="req-7", escalate_to=[])
    assert WebhookNotifier(receiver.url, backoff=0.01).send(n) is True
    [req] = receiver.requests
    assert req["path"] == "/hooks/T000/SECRET"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["Idempotency-Key"] == "agents/support-agent/d-1/approval_request"
    assert req["body"] == build_payload(n, "json")
    assert req["body"] == {
        "schema": "launchgate.dev/notification/v1",
        "kind": "approval_request",
        "namespace": "agents",
        "rollout": "support-agent",
        "phase": "Canary1",
        "decision_id": "d-1",
        "approval_request_id": "req-7",
        "reason": "error rate 2.4x baseline for 10m",
        "values": {"error_ratio": 2.4, "p95_latency_ms": None},  # NaN is not JSON: no data
        "owners": {"reliability": "sre-oncall", "governance": "ai-governance"},
        "escalate_to": ["sre-oncall", "ai-governance"],  # no escalation list: every owner
        "at": "2026-04-01T12:00:00Z",
        "dedup_key": "agents/support-agent/d-1/approval_request",
        "summary": "Approval requested: agents/support-agent in Canary1 (request req-7): "
                   "error rate 2.4x baseline for 10m — escalate to sre-oncall, ai-governance",
    }


def test_slack_payload_over_http(receiver: Receiver) -> None:
    n = note("block", reason="p95 <latency> & errors", approval_request_id=None)
    assert WebhookNotifier(receiver.url, fmt="slack").send(n) is True
    body = receiver.requests[0]["body"]
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith(":no_entry: Launch gate blocked promotion: agents/support-agent in Canary1")
    assert "p95 &lt;latency&gt; &amp; errors" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "section", "context"]
    header, main, values, context = body["blocks"]
    assert header["text"] == {"type": "plain_text", "text": "Launch gate blocked promotion: support-agent"}
    assert main["text"]["type"] == "mrkdwn" and "&lt;latency&gt;" in main["text"]["text"]
    assert "*Escalate to*\nsre-oncall" in [f["text"] for f in main["fields"]]
    assert "`error_ratio` = 2.4" in values["text"]["text"] and "`p95_latency_ms` = no data" in values["text"]["text"]
    assert "owners reliability: sre-oncall, governance: ai-governance" in context["elements"][0]["text"]


def test_a_pause_has_its_own_kind_title_and_emoji() -> None:
    n = note("pause", reason="no usable data: canary1: p95: no data: empty vector (10 evaluations in a row)")
    body = build_payload(n, "json")
    assert (body["kind"], body["dedup_key"]) == ("pause", "agents/support-agent/d-1/pause")
    assert body["summary"].startswith("Rollout paused: agents/support-agent in Canary1: no usable data")
    slack = build_payload(n, "slack")
    assert slack["text"].startswith(":double_vertical_bar: Rollout paused: agents/support-agent in Canary1")
    assert slack["blocks"][0]["text"]["text"] == "Rollout paused: support-agent"


def test_slack_header_respects_slack_limits() -> None:
    body = build_payload(note(rollout="r" * 300, reason="x" * 5000), "slack")
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in body["blocks"] if b["type"] == "section")


def test_bad_kind_and_format() -> None:
    with pytest.raises(ValueError, match="kind"):
        note("promote")
    with pytest.raises(ValueError, match="json or slack"):
        build_payload(note(), "teams")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("ftp://example.org/x")


# --------------------------------------------------------------------------- retries


def test_retries_5xx_until_success(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    assert WebhookNotifier(receiver.url, retries=3, backoff=0.01).send(note()) is True
    assert len(receiver.requests) == 3
    # Every attempt carries the same idempotency key, so the receiver can drop duplicates.
    assert len({r["headers"]["Idempotency-Key"] for r in receiver.requests}) == 1


def test_retries_429(receiver: Receiver) -> None:
    receiver.statuses = [429]
    assert WebhookNotifier(receiver.url, backoff=0.01).send(note()) is True
    assert len(receiver.requests) == 2


def test_no_retry_on_4xx(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [400]
    with caplog.at_level(logging.WARNING, logger="launchgate.notify"):
        assert WebhookNotifier(receiver.url, retries=3, backoff=0.01).send(note()) is False
    assert len(receiver.requests) == 1
    line = json.loads(caplog.records[-1].getMessage())
    assert (line["msg"], line["attempts"], line["error"]) == ("notification failed", 1, "HTTP 400")


def test_gives_up_after_retries_on_5xx(receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    assert WebhookNotifier(receiver.url, retries=2, backoff=0.01).send(note()) is False
    assert len(receiver.requests) == 3


def test_unreachable_returns_false_after_retries(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        time.sleep(s)

    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/SECRETTOKEN"
    notifier = WebhookNotifier(url, retries=3, backoff=0.01, timeout=1, sleep=sleep)
    with caplog.at_level(logging.WARNING, logger="launchgate.notify"):
        assert notifier.send(note()) is False
    assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff between 4 attempts
    line = json.loads(caplog.records[-1].getMessage())
    assert line["attempts"] == 4 and line["error"] == "ConnectionError"
    assert "SECRETTOKEN" not in caplog.text  # webhook URLs carry secrets in the path


def test_backoff_is_capped() -> None:
    sleeps: list[float] = []
    notifier = WebhookNotifier(f"http://127.0.0.1:{free_port()}/", retries=5, backoff=1.0, max_backoff=2.0,
                               timeout=1, sleep=sleeps.append)
    assert notifier.send(note()) is False
    assert sleeps == [1.0, 2.0, 2.0, 2.0, 2.0]


# --------------------------------------------------------------------------- dispatcher


def test_dispatcher_delivers_in_order(receiver: Receiver) -> None:
    results: list[str] = []
    d = AsyncDispatcher(WebhookNotifier(receiver.url, backoff=0.01), on_result=results.append)
    receiver.statuses = [500]  # a retry on the first must not reorder the rest
    for i in range(20):
        d.submit(note(decision_id=f"d-{i}"))
    assert d.flush(timeout=20)
    d.close()
    ids = [r["body"]["decision_id"] for r in receiver.requests]
    assert ids == ["d-0"] + [f"d-{i}" for i in range(20)]
    assert results == ["sent"] * 20 and d.dropped == 0


def test_submit_never_waits_on_a_slow_receiver(receiver: Receiver) -> None:
    receiver.delay = 0.5
    results: list[str] = []
    d = AsyncDispatcher(WebhookNotifier(receiver.url), on_result=results.append)
    start = time.monotonic()
    for i in range(5):
        d.submit(note(decision_id=f"d-{i}"))
    assert time.monotonic() - start < 0.2
    assert d.pending() >= 4
    d.close(timeout=0.1)  # a shutdown is not held hostage by the receiver either
    assert time.monotonic() - start < 0.5
    assert d.dropped == 4 and results == ["dropped"] * 4  # d-0 is in flight; the rest are abandoned
    assert d.flush(timeout=2) and results[-1] == "sent"
    assert [r["body"]["decision_id"] for r in receiver.requests] == ["d-0"]


class Gate:
    """A Notifier that blocks until released: makes the queue's fill level deterministic."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.sent: list[str] = []

    def send(self, n: Notification) -> bool:
        self.started.set()
        self.release.wait(10)
        self.sent.append(n.decision_id)
        return n.decision_id != "d-4"


def test_full_queue_drops_oldest_and_counts() -> None:
    results: list[str] = []
    gate = Gate()
    d = AsyncDispatcher(gate, maxsize=2, on_result=results.append)
    d.submit(note(decision_id="d-0"))
    assert gate.started.wait(5)  # d-0 is in flight, the queue is empty
    for i in range(1, 5):
        d.submit(note(decision_id=f"d-{i}"))
    assert d.dropped == 2 and results == ["dropped", "dropped"]
    gate.release.set()
    assert d.flush(timeout=5)
    assert gate.sent == ["d-0", "d-3", "d-4"]
    assert results == ["dropped", "dropped", "sent", "sent", "failed"]
    d.close()


def test_close_delivers_pending_then_refuses(receiver: Receiver) -> None:
    results: list[str] = []
    d = AsyncDispatcher(WebhookNotifier(receiver.url), on_result=results.append)
    for i in range(3):
        d.submit(note(decision_id=f"d-{i}"))
    d.close(timeout=10)
    assert len(receiver.requests) == 3
    d.submit(note(decision_id="late"))
    assert d.dropped == 1 and results[-1] == "dropped" and len(receiver.requests) == 3


def test_a_raising_notifier_does_not_kill_the_thread() -> None:
    calls: list[str] = []

    class Boom:
        def send(self, n: Notification) -> bool:
            calls.append(n.decision_id)
            if n.decision_id == "d-0":
                raise RuntimeError("boom")
            return True

    results: list[str] = []
    d = AsyncDispatcher(Boom(), on_result=results.append)
    d.submit(note(decision_id="d-0"))
    d.submit(note(decision_id="d-1"))
    assert d.flush(5)
    d.close()
    assert calls == ["d-0", "d-1"] and results == ["failed", "sent"]


def test_dispatcher_from_config(receiver: Receiver) -> None:
    assert dispatcher_from_config(Config.load({}).webhook) is None
    with pytest.raises(ValueError, match="LAUNCHGATE_WEBHOOK_FORMAT"):
        Config.load({"LAUNCHGATE_WEBHOOK_URL": receiver.url, "LAUNCHGATE_WEBHOOK_FORMAT": "xml"})
    d = dispatcher_from_config(Config.load({"LAUNCHGATE_WEBHOOK_URL": receiver.url, "LAUNCHGATE_WEBHOOK_FORMAT": "slack",
                                            "LAUNCHGATE_WEBHOOK_AUTHORIZATION": "Bearer t0k"}).webhook)
    assert d is not None
    d.submit(note())
    d.close()
    [req] = receiver.requests
    assert set(req["body"]) == {"text", "blocks"} and req["headers"]["Authorization"] == "Bearer t0k"
