"""Owner notifications: a webhook on block, rollback, pause and approval request, with retries.

The AI Agent Production Deployment Checklist's launch-gate contract names owners (reliability,
governance, cost) so that a failing gate pages someone accountable; "we will watch dashboards" is
what it warns against. The operator therefore pushes an event to one operator-wide webhook
(generic JSON, or Slack-compatible), and the payload carries the owners and escalation contacts so
the receiver routes it.

Why one URL from the operator's environment and not a URL per owner in the LaunchGate spec:
anyone who may edit a LaunchGate could otherwise make the operator POST to any address inside
the cluster, and a Slack webhook URL is a secret that does not belong in a readable spec.

Delivery never blocks a reconcile and never raises: `AsyncDispatcher` hands events to a
background thread through a bounded queue; `WebhookNotifier.send` retries transient failures
with exponential backoff and reports failure as False plus a JSON log line.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from launchgate import __version__
from launchgate.config import WebhookConfig
from launchgate.core.protocols import Notification, Notifier

log = logging.getLogger("launchgate.notify")

PayloadFormat = Literal["json", "slack"]
SCHEMA = "launchgate.dev/notification/v1"

_TITLES = {
    "block": "Launch gate blocked promotion",
    "rollback": "Rollback",
    "pause": "Rollout paused",
    "approval_request": "Approval requested",
}
_EMOJI = {"block": ":no_entry:", "rollback": ":rewind:", "pause": ":double_vertical_bar:",
          "approval_request": ":raising_hand:"}


# --------------------------------------------------------------------------- payloads (pure)


def _rfc3339(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _finite(v: float | None) -> float | None:
    """JSON has no NaN or Infinity; a missing or non-finite value is null (no data)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _contacts(n: Notification) -> list[str]:
    """Who to page: the escalation contacts, else every owner; deduplicated, in order."""
    seen: list[str] = []
    for c in list(n.escalate_to) or list(n.owners.values()):
        if c and c not in seen:
            seen.append(c)
    return seen


def summary(n: Notification) -> str:
    """One line a human reads first (Slack's notification text, the JSON payload's `summary`)."""
    who = f" — escalate to {', '.join(_contacts(n))}" if _contacts(n) else ""
    req = f" (request {n.approval_request_id})" if n.approval_request_id else ""
    return f"{_TITLES[n.kind]}: {n.namespace}/{n.rollout} in {n.phase}{req}: {n.reason}{who}"


def _slack_escape(text: str) -> str:
    # Slack mrkdwn treats &, < and > as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fmt_value(v: float | None) -> str:
    if v is None:
        return "no data"
    return f"{v:.6g}"


def build_payload(event: Notification, fmt: PayloadFormat = "json") -> dict[str, Any]:
    """The request body for one notification: generic JSON, or Slack's `{text, blocks}`.

    Generic JSON uses snake_case keys like the checklist's launch-gate-contract.json and carries a
    `schema` string so receivers can evolve with it. The Slack form keeps `text` as the fallback
    that notifications and screen readers show; the blocks carry the evidence.
    """
    values = {k: _finite(v) for k, v in sorted(event.values.items())}
    if fmt == "json":
        return {
            "schema": SCHEMA,
            "kind": event.kind,
            "namespace": event.namespace,
            "rollout": event.rollout,
            "phase": event.phase,
            "decision_id": event.decision_id,
            "approval_request_id": event.approval_request_id,
            "reason": event.reason,
            "values": values,
            "owners": dict(event.owners),
            "escalate_to": _contacts(event),
            "at": _rfc3339(event.at),
            "dedup_key": event.dedup_key,
            "summary": summary(event),
        }
    if fmt != "slack":
        raise ValueError(f"payload format must be json or slack, got {fmt!r}")
    esc = _slack_escape
    fields = [
        {"type": "mrkdwn", "text": f"*Rollout*\n`{esc(event.namespace)}/{esc(event.rollout)}`"},
        {"type": "mrkdwn", "text": f"*Phase*\n{esc(event.phase)}"},
        {"type": "mrkdwn", "text": f"*Decision*\n`{esc(event.decision_id)}`"},
    ]
    if event.approval_request_id:
        fields.append({"type": "mrkdwn", "text": f"*Approval request*\n`{esc(event.approval_request_id)}`"})
    contacts = _contacts(event)
    if contacts:
        fields.append({"type": "mrkdwn", "text": f"*Escalate to*\n{esc(', '.join(contacts))}"})
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{_TITLES[event.kind]}: {event.rollout}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": esc(event.reason)[:2900] or "(no reason given)"},
         "fields": fields[:10]},
    ]
    if values:
        lines = [f"• `{esc(k)}` = {_fmt_value(v)}" for k, v in values.items()]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Values*\n" + "\n".join(lines)[:2900]}})
    owners = ", ".join(f"{esc(r)}: {esc(c)}" for r, c in event.owners.items())
    context = f"launchgate · {_rfc3339(event.at)}" + (f" · owners {owners}" if owners else "")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:2900]}]})
    return {"text": f"{_EMOJI[event.kind]} {esc(summary(event))}", "blocks": blocks}


# --------------------------------------------------------------------------- delivery


def _redact(url: str) -> str:
    """Scheme and host only: webhook URLs (Slack's especially) carry the secret in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


class WebhookNotifier:
    """POSTs notifications to one URL; retries what may succeed later, gives up on what won't.

    Retried (up to `retries` more times, sleeping backoff, 2·backoff, 4·backoff, ... capped at
    `max_backoff`): connection errors, timeouts, 5xx and 429 — the receiver is down or shedding
    load. Not retried: other 4xx — the request itself is wrong, and repeating it only adds noise.
    """

    def __init__(self, url: str, fmt: PayloadFormat = "json", timeout: float = 5.0, retries: int = 3,
                 backoff: float = 0.5, headers: Mapping[str, str] | None = None, max_backoff: float = 30.0,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if fmt not in ("json", "slack"):
            raise ValueError(f"webhook format must be json or slack, got {fmt!r}")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http(s), got {_redact(url)}")
        self.url = url
        self.fmt: PayloadFormat = fmt
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        self.max_backoff = max_backoff
        self.headers = {"Content-Type": "application/json", "User-Agent": f"launchgate/{__version__}",
                        **dict(headers or {})}
        self._session = session or requests.Session()
        self._sleep = sleep

    def send(self, n: Notification) -> bool:
        """Deliver one notification; True once the receiver answers 2xx. Never raises."""
        try:
            body = json.dumps(build_payload(n, self.fmt), allow_nan=False).encode()
        except Exception as e:  # noqa: BLE001 - a malformed event must not break the caller
            self._log_failure(n, 0, f"payload: {e!r}")
            return False
        headers = {**self.headers, "Idempotency-Key": n.dedup_key}
        error = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            attempts = attempt + 1
            retryable = True
            try:
                resp = self._session.post(self.url, data=body, headers=headers, timeout=self.timeout)
                if 200 <= resp.status_code < 300:
                    return True
                error = f"HTTP {resp.status_code}"
                retryable = resp.status_code >= 500 or resp.status_code == 429
            except requests.RequestException as e:
                error = type(e).__name__
            except Exception as e:  # noqa: BLE001
                error = repr(e)
            if not retryable or attempt == self.retries:
                break
            self._sleep(min(self.max_backoff, self.backoff * (2 ** attempt)))
        self._log_failure(n, attempts, error)
        return False

    def _log_failure(self, n: Notification, attempts: int, error: str) -> None:
        log.warning(json.dumps({"msg": "notification failed", "kind": n.kind, "rollout": f"{n.namespace}/{n.rollout}",
                                "decision_id": n.decision_id, "url": _redact(self.url), "attempts": attempts,
                                "error": error}))


NotifyResult = Literal["sent", "failed", "dropped"]


class AsyncDispatcher:
    """Delivers notifications on a background thread so a reconcile never waits on a receiver.

    The queue is bounded: when a receiver is down for long, the oldest pending events are
    dropped (and counted) rather than letting memory grow without limit; the newest events are
    the ones describing the rollout's current state. `on_result` is told "sent", "failed" or
    "dropped" for every event (the operator feeds it to launchgate_notifications_total).
    """

    def __init__(self, notifier: Notifier, maxsize: int = 256,
                 on_result: Callable[[NotifyResult], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.notifier = notifier
        self.maxsize = maxsize
        self.dropped = 0
        self._on_result = on_result
        self._queue: deque[Notification] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="launchgate-notify", daemon=True)
        self._thread.start()

    def submit(self, n: Notification) -> None:
        """Queue one notification and return at once; drops the oldest pending one when full."""
        dropped = 0
        with self._cond:
            if self._closed:
                dropped = 1
            else:
                while len(self._queue) >= self.maxsize:
                    self._queue.popleft()
                    dropped += 1
                self._queue.append(n)
                self._cond.notify_all()
            self.dropped += dropped
        for _ in range(dropped):
            log.warning(json.dumps({"msg": "notification dropped", "kind": n.kind,
                                    "rollout": f"{n.namespace}/{n.rollout}", "dropped_total": self.dropped}))
            self._report("dropped")

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting, try to deliver what is queued within `timeout`, drop (and count) the rest.

        The thread is a daemon: an operator shutting down is never held hostage by a receiver.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            abandoned = len(self._queue)
            self._queue.clear()  # the worker exits after its current attempt
            self.dropped += abandoned
        if abandoned:
            log.warning(json.dumps({"msg": "notifications abandoned at shutdown", "count": abandoned}))
        for _ in range(abandoned):
            self._report("dropped")

    def _report(self, result: NotifyResult) -> None:
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:  # noqa: BLE001 - metrics must never stop delivery
                log.exception("notification result hook failed")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                n = self._queue.popleft()
                self._busy = True
            try:
                ok = self.notifier.send(n)
            except Exception:  # noqa: BLE001 - a Notifier that raises must not kill the thread
                log.exception("notifier raised")
                ok = False
            self._report("sent" if ok else "failed")
            with self._cond:
                self._busy = False
                self._cond.notify_all()


def dispatcher_from_config(webhook: WebhookConfig,
                           on_result: Callable[[NotifyResult], None] | None = None) -> AsyncDispatcher | None:
    """The operator's dispatcher for its webhook settings (LAUNCHGATE_WEBHOOK_*, validated by the
    Config); None when no webhook URL is set."""
    if not webhook.url:
        return None
    headers = {"Authorization": webhook.authorization} if webhook.authorization else {}
    notifier = WebhookNotifier(
        webhook.url,
        fmt=webhook.format,
        timeout=webhook.timeout,
        retries=webhook.retries,
        headers=headers,
    )
    return AsyncDispatcher(notifier, maxsize=webhook.queue_size, on_result=on_result)
