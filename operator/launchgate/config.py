"""The operator's settings: every `LAUNCHGATE_*` environment variable, validated once at start-up.

`Config` is the one place that names each variable, its default and what it does; README's
settings table is generated from it (`python -m launchgate.config --markdown`) and a unit test
keeps README, the chart's values and the kustomize manifest in step with it. A bad value stops
the operator before it starts, with a message naming the variable (`ConfigError`), rather than
surfacing later as a failing pass. The adapters take the values they need as plain arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from launchgate.core.durations import parse_duration
from launchgate.core.leadership import LeaseTerms

ENV_PREFIX = "LAUNCHGATE_"
_SECRET = {"prometheus_token", "webhook_url", "webhook_authorization"}  # never echoed in an error


def _seconds(value: Any) -> Any:
    """A Go-style duration ("30s", "500ms", "1h30m"); a number passes as seconds, for code that
    builds a Config directly."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_duration(value)


def _number(value: Any) -> Any:
    """What Python's float() accepts, as the operator always has."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
    return value


def _whole(value: Any) -> Any:
    """What Python's int() accepts ("96", " 96 "; not "96.0")."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"not a whole number: {value!r}") from None
    return value


def _optional(value: Any) -> Any:
    """An empty variable is an unset one (a chart leaves optional values empty)."""
    return None if value == "" else value


def _stripped_optional(value: Any) -> Any:
    return _optional(value.strip() if isinstance(value, str) else value)


def _optional_seconds(value: Any) -> Any:
    """A duration, or None when unset or empty."""
    value = _optional(value)
    return None if value is None else _seconds(value)


def _setting(default: str | None, *, description: str, **constraints: Any) -> Any:
    """A field whose default is the variable's text, validated like a value that was set (typed Any:
    the text is no float or int until validation)."""
    return Field(default, description=description, **constraints)


Seconds = Annotated[float, BeforeValidator(_seconds)]
Number = Annotated[float, BeforeValidator(_number)]
Whole = Annotated[int, BeforeValidator(_whole)]


@dataclass(frozen=True)
class WebhookConfig:
    """The owner-notification webhook's settings, as the notify adapter takes them."""

    url: str | None
    format: Literal["json", "slack"]
    authorization: str | None
    timeout: float
    retries: int
    queue_size: int


class ConfigError(ValueError):
    """Invalid settings: one line per problem, each starting with the variable it is about."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Config(BaseSettings):
    """The operator's settings. Build it with `Config.load()`, whose errors name the variables.

    Every default is written as the variable's text (durations as "30s"), so the settings table
    shows exactly what one would set; validation turns it into seconds or numbers."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, validate_default=True, extra="ignore")

    # ------------------------------------------------------------------ Prometheus
    prometheus_url: str = _setting(
        "http://prometheus:9090",
        description="Base URL of the Prometheus the gates query. The `launchgate check` and `backtest` "
                    "commands read it too (`--prometheus`), and there it has no default.")
    prometheus_timeout: Number = _setting(
        "10", description="Per-query timeout, in seconds (a number, e.g. `10` or `2.5`).")
    prometheus_shared_timeout: Seconds = _setting(
        "30s",
        description="Timeout of the queries shared by all rollouts of a gate or trigger shape, which answer "
                    "for every rollout at once: longer, so a busy Prometheus finishes them rather than "
                    "throwing the work away. Never shorter than `LAUNCHGATE_PROMETHEUS_TIMEOUT`: the longer "
                    "of the two applies.")
    prometheus_token_file: Annotated[str | None, BeforeValidator(_optional)] = _setting(
        None,
        description="File holding a bearer token for Prometheus (a mounted Secret or a projected token). "
                    "Read at start-up, so a missing or unreadable file stops the operator rather than "
                    "sending unauthenticated queries that fail as no data, and read again whenever it "
                    "changes. Unset: no authentication.")
    prometheus_ca_file: Annotated[str | None, BeforeValidator(_optional)] = _setting(
        None, description="CA bundle (PEM) of Prometheus' TLS certificate. Unset: the system trust store.")
    prometheus_token: Annotated[SecretStr | None, BeforeValidator(_optional)] = _setting(
        None,
        description="Bearer token for Prometheus, for the `launchgate check` and `backtest` commands "
                    "(`--token`); the operator reads `LAUNCHGATE_PROMETHEUS_TOKEN_FILE` instead.")
    scrape_interval: Seconds = _setting(
        "30s",
        description="How often Prometheus scrapes the canaries. A blocker's value counts only while the newest "
                    "sample of its canary series is at most twice this old, unless the LaunchGate sets "
                    "`freshness`: a canary that stopped reporting holds its gates, whatever its queries' "
                    "range. `launchgate check` and `backtest` read it too (`--scrape-interval`).")

    # ------------------------------------------------------------------ evaluation
    identity: str = _setting(
        "launchgate-operator",
        description="The actor DecisionRecords name for the decisions the operator makes itself.")
    gate_interval: Seconds = _setting(
        "30s", description="How often a LaunchGate not used by any rollout is evaluated.")
    min_interval: Seconds = _setting(
        "500ms",
        description="The shortest time between two passes of one rollout or gate, whatever its interval "
                    "or a recheck asks for.")
    workers: Whole = _setting(
        "96", ge=1,
        description="Threads for blocking calls (Prometheus queries, API requests), started as passes need "
                    "them, and the most passes in flight at once. A pass mostly waits (a shared Prometheus "
                    "answer, a status write), so passes in flight, not CPU, bound how many rollouts are "
                    "evaluated per window: at 10,000 rollouts 32 left every pass ~12 s late, 96 ~3 s.")
    query_sharing: Seconds = _setting(
        "5s",
        description="How old a gate answer shared between rollouts may be, or three times as long as "
                    "Prometheus took to answer when that is more (twice for rollback triggers), visible in "
                    "`launchgate_shared_query_duration_seconds`: gate queries of the same shape are sent "
                    "once for all rollouts about this often. `0s` sends one per rollout.")
    trigger_settle: Seconds = _setting(
        "10s",
        description="A rollback trigger's window, fetched again, asks Prometheus only for the steps newer "
                    "than this: raise it when samples reach Prometheus later than that, e.g. through "
                    "remote write.")

    # ------------------------------------------------------------------ decision timeline
    record_retention: Annotated[float | None, BeforeValidator(_optional_seconds)] = _setting(
        None,
        description="How long DecisionRecords are kept, counted from their `spec.at`: the operator deletes "
                    "older ones in the namespaces it watches, looking every tenth of this (at least every "
                    "second, at most every hour), and says so in a JSON log line per record and an Event on "
                    "the AgentRollout they are about (in its namespace, whether it still exists or not). The "
                    "ServiceAccount needs `delete` on them for this: the `manifests/retention` component or "
                    "the chart's `recordRetention` grant it, and the admission policy lets no one else but "
                    "the group `launchgate-timeline-retention` delete a record. Unset: kept for ever.")

    # ------------------------------------------------------------------ Kubernetes API
    resync_interval: Seconds = _setting(
        "5m",
        description="How often a Deployment or HTTPRoute the operator drives is re-read even though its "
                    "watch reported no change (a safety net for a watch that is down), until the watch "
                    "has shown the version the operator holds.")
    watched_resync_interval: Seconds = _setting(
        "1h",
        description="The same, once the watch has shown the version the operator holds, so a healthy "
                    "watch costs no reads. Never shorter than `LAUNCHGATE_RESYNC_INTERVAL`: the longer of "
                    "the two applies.")
    status_heartbeat: Seconds = _setting(
        "5m",
        description="An unchanged gate result is still written this often, so a LaunchGate's EVALUATED "
                    "shows that evaluation is alive.")
    status_writers: Whole = _setting(
        "4",
        description="Threads that write LaunchGate statuses (at least one), so a pass never waits for "
                    "one; only the latest status of a gate waits to be written, a newer one replaces it.")
    api_write_qps: Number = _setting(
        "0", ge=0,
        description="At most this many API writes a second on average, as client-go's QPS; time spent "
                    "waiting shows in `launchgate_api_write_wait_seconds_total`. Set it when one "
                    "operator's canary starts could swamp a small API server. `0`: no limit.")
    api_write_burst: Annotated[Whole | None, BeforeValidator(_optional)] = _setting(
        None, ge=1,
        description="API writes that may go at once under `LAUNCHGATE_API_WRITE_QPS`, as client-go's "
                    "Burst. Unset: twice the QPS.")
    api_retry_max_delay: Seconds = _setting(
        "30s",
        description="A failed API request is retried after 1, 1, 2, 3, 5… seconds up to this, for as long "
                    "as it fails, each failure logged: an API server that is down or rebuilding its cache "
                    "never stops the operator. More than `0s`.")

    # ------------------------------------------------------------------ high availability
    leader_election: bool = _setting(
        "false",
        description="Run as one of several replicas: only the holder of a `coordination.k8s.io/v1` Lease "
                    "decides and writes, the others keep their watches warm and take over when its Lease "
                    "runs out. The chart and the kustomize manifest turn it on (2 replicas). `false`: this "
                    "process decides alone, as one replica must.")
    leader_election_namespace: Annotated[str | None, BeforeValidator(_stripped_optional)] = _setting(
        None,
        description="Namespace of the Lease. Unset: the operator pod's own namespace (from its "
                    "ServiceAccount), or `default` outside a cluster.")
    leader_election_lease: str = _setting("launchgate", description="Name of the Lease the replicas share.")
    leader_election_lease_duration: Seconds = _setting(
        "15s",
        description="How long a standby waits, after it last saw the leader renew, before it takes the Lease "
                    "over: the longest time without decisions when the leader dies (client-go's default).")
    leader_election_renew_deadline: Seconds = _setting(
        "10s",
        description="A leader that has not renewed its Lease for this long stops deciding, before a standby "
                    "may take over. Shorter than the lease duration, longer than the retry period.")
    leader_election_retry_period: Seconds = _setting(
        "2s", description="How often each replica tries to take or renew the Lease.")

    # ------------------------------------------------------------------ metrics
    metrics_port: Whole = _setting(
        "8000", ge=0, le=65535, description="Port of the operator's `/metrics` endpoint; `0` serves none.")
    metrics_addr: str = _setting("0.0.0.0", description="Address the `/metrics` endpoint listens on.")

    # ------------------------------------------------------------------ owner notifications
    webhook_url: Annotated[SecretStr | None, BeforeValidator(_stripped_optional)] = _setting(
        None,
        description="Owner-notification webhook URL; mount it from a Secret (a Slack webhook URL is itself "
                    "a secret). Unset: notifications off.")
    webhook_format: Literal["json", "slack"] = _setting(
        "json",
        description="`json` (a generic JSON POST) or `slack` (a Slack incoming-webhook payload); case and "
                    "surrounding spaces do not matter.")
    webhook_authorization: Annotated[SecretStr | None, BeforeValidator(_optional)] = _setting(
        None,
        description="A whole Authorization header value sent with every notification, e.g. `Bearer ...`; "
                    "also from a Secret.")
    webhook_timeout: Number = _setting("5", description="Timeout of one notification request, in seconds.")
    webhook_retries: Whole = _setting(
        "3",
        description="Retries of a notification that failed in a way that may succeed later (connection "
                    "errors, timeouts, 5xx, 429).")
    webhook_queue_size: Whole = _setting(
        "256", ge=1,
        description="Notifications that may wait to be sent; when full, the oldest waiting one is dropped "
                    "and counted in `launchgate_notifications_total`.")

    @field_validator("webhook_format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        fmt = str(value).strip().lower()
        if fmt not in ("json", "slack"):
            raise ValueError(f"must be json or slack, got {fmt!r}")
        return fmt

    @field_validator("api_retry_max_delay", "scrape_interval")
    @classmethod
    def _positive_delay(cls, value: float) -> float:
        # Kopf would retry a failed request with no pause at all; no sample is ever fresh within 0s.
        if not value > 0:
            raise ValueError(f"must be more than 0s, got {value:g}s")
        return value

    @field_validator("record_retention")
    @classmethod
    def _positive_retention(cls, value: float | None) -> float | None:
        # 0s would delete every record as soon as it is written.
        if value is not None and not value > 0:
            raise ValueError(f"must be more than 0s, got {value:g}s")
        return value

    @field_validator("prometheus_token_file")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        if path is not None:
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise ValueError(f"cannot read {path!r}: {e.strerror}") from None
        return path

    @model_validator(mode="after")
    def _lease_terms_are_safe(self) -> Config:
        if self.leader_election and (problems := self.lease_terms.problems()):
            raise ValueError("LAUNCHGATE_LEADER_ELECTION_LEASE_DURATION, _RENEW_DEADLINE, _RETRY_PERIOD: "
                             + "; ".join(problems))
        return self

    @property
    def lease_terms(self) -> LeaseTerms:
        return LeaseTerms(self.leader_election_lease_duration, self.leader_election_renew_deadline,
                          self.leader_election_retry_period)

    @model_validator(mode="after")
    def _shared_timeout_covers_a_query(self) -> Config:
        self.prometheus_shared_timeout = max(self.prometheus_timeout, self.prometheus_shared_timeout)
        return self

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Config:
        """The settings from the process environment, or from `environ` alone when given (the
        process environment is then not read); ConfigError names every bad variable."""
        try:
            if environ is None:
                return cls()
            return cls.model_validate({name: environ[env_name(name)]
                                       for name in cls.model_fields if env_name(name) in environ})
        except ValidationError as e:
            raise ConfigError([_problem(err) for err in e.errors()]) from None

    @property
    def webhook(self) -> WebhookConfig:
        return WebhookConfig(
            url=self.webhook_url.get_secret_value() if self.webhook_url else None,
            format=self.webhook_format,
            authorization=self.webhook_authorization.get_secret_value() if self.webhook_authorization else None,
            timeout=self.webhook_timeout,
            retries=self.webhook_retries,
            queue_size=self.webhook_queue_size,
        )


def env_name(field: str) -> str:
    """The environment variable of a Config field."""
    if field not in Config.model_fields:
        raise KeyError(field)
    return ENV_PREFIX + field.upper()


def _problem(err: Any) -> str:
    loc = err.get("loc") or ()
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:
        return msg
    name = env_name(str(loc[0]))
    if err["type"] == "value_error" or str(loc[0]) in _SECRET:
        return f"{name}: {msg}"
    return f"{name}: {msg}, got {err['input']!r}"


def markdown_table() -> str:
    """README's settings table: variable, default, description, in the model's order."""
    rows = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for name, field in Config.model_fields.items():
        default = "unset" if field.default is None else f"`{field.default}`"
        rows.append(f"| `{env_name(name)}` | {default} | {field.description} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m launchgate.config",
                                description="The operator's settings (LAUNCHGATE_* environment variables).")
    p.add_argument("--markdown", action="store_true", help="print README's settings table")
    a = p.parse_args(argv)
    if a.markdown:
        print(markdown_table(), end="")
        return 0
    try:
        config = Config.load()
    except ConfigError as e:
        for problem in e.problems:
            print(f"launchgate: {problem}", file=sys.stderr)
        return 2
    for name in Config.model_fields:  # seconds for durations; secrets masked; empty when unset
        value = getattr(config, name)
        print(f"{env_name(name)}={'' if value is None else value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
