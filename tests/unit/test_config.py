"""The operator's settings: parsing, defaults and errors, and the places that must agree with them
(README's table, the chart's values and env, the kustomize manifest)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from launchgate.config import Config, ConfigError, env_name, main, markdown_table

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "launchgate"

DEFAULTS: dict[str, Any] = {
    "prometheus_url": "http://prometheus:9090",
    "prometheus_timeout": 10.0,
    "prometheus_shared_timeout": 30.0,
    "prometheus_token_file": None,
    "prometheus_ca_file": None,
    "prometheus_token": None,
    "scrape_interval": 30.0,
    "identity": "launchgate-operator",
    "gate_interval": 30.0,
    "min_interval": 0.5,
    "workers": 96,
    "query_sharing": 5.0,
    "trigger_settle": 10.0,
    "record_retention": None,
    "resync_interval": 300.0,
    "watched_resync_interval": 3600.0,
    "status_heartbeat": 300.0,
    "status_writers": 4,
    "api_write_qps": 0.0,
    "api_write_burst": None,
    "api_retry_max_delay": 30.0,
    "metrics_port": 8000,
    "metrics_addr": "0.0.0.0",
    "webhook_url": None,
    "webhook_format": "json",
    "webhook_authorization": None,
    "webhook_timeout": 5.0,
    "webhook_retries": 3,
    "webhook_queue_size": 256,
    "leader_election": False,
    "leader_election_namespace": None,
    "leader_election_lease": "launchgate",
    "leader_election_lease_duration": 15.0,
    "leader_election_renew_deadline": 10.0,
    "leader_election_retry_period": 2.0,
}


def _plain(value: Any) -> Any:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def test_every_default() -> None:
    config = Config.load({})
    assert set(DEFAULTS) == set(Config.model_fields)
    assert {name: _plain(getattr(config, name)) for name in DEFAULTS} == DEFAULTS


OVERRIDES: list[tuple[str, str, str, Any]] = [
    ("LAUNCHGATE_PROMETHEUS_URL", "https://prom.example:9090", "prometheus_url", "https://prom.example:9090"),
    ("LAUNCHGATE_PROMETHEUS_TIMEOUT", "2.5", "prometheus_timeout", 2.5),
    ("LAUNCHGATE_PROMETHEUS_SHARED_TIMEOUT", "1m", "prometheus_shared_timeout", 60.0),
    ("LAUNCHGATE_PROMETHEUS_CA_FILE", "/etc/ca.crt", "prometheus_ca_file", "/etc/ca.crt"),
    ("LAUNCHGATE_PROMETHEUS_CA_FILE", "", "prometheus_ca_file", None),
    ("LAUNCHGATE_PROMETHEUS_TOKEN_FILE", "", "prometheus_token_file", None),
    ("LAUNCHGATE_PROMETHEUS_TOKEN", "t0k", "prometheus_token", "t0k"),
    ("LAUNCHGATE_SCRAPE_INTERVAL", "15s", "scrape_interval", 15.0),
    ("LAUNCHGATE_IDENTITY", "ops-bot", "identity", "ops-bot"),
    ("LAUNCHGATE_GATE_INTERVAL", "1s", "gate_interval", 1.0),
    ("LAUNCHGATE_MIN_INTERVAL", "250ms", "min_interval", 0.25),
    ("LAUNCHGATE_WORKERS", "32", "workers", 32),
    ("LAUNCHGATE_QUERY_SHARING", "0s", "query_sharing", 0.0),
    ("LAUNCHGATE_TRIGGER_SETTLE", "1m30s", "trigger_settle", 90.0),
    ("LAUNCHGATE_RECORD_RETENTION", "2160h", "record_retention", 7776000.0),
    ("LAUNCHGATE_RECORD_RETENTION", "", "record_retention", None),
    ("LAUNCHGATE_RESYNC_INTERVAL", "10m", "resync_interval", 600.0),
    ("LAUNCHGATE_WATCHED_RESYNC_INTERVAL", "2h", "watched_resync_interval", 7200.0),
    ("LAUNCHGATE_STATUS_HEARTBEAT", "1m", "status_heartbeat", 60.0),
    ("LAUNCHGATE_STATUS_WRITERS", "8", "status_writers", 8),
    ("LAUNCHGATE_API_WRITE_QPS", "0.5", "api_write_qps", 0.5),
    ("LAUNCHGATE_API_WRITE_BURST", "80", "api_write_burst", 80),
    ("LAUNCHGATE_API_WRITE_BURST", "", "api_write_burst", None),
    ("LAUNCHGATE_API_RETRY_MAX_DELAY", "300ms", "api_retry_max_delay", 0.3),
    ("LAUNCHGATE_METRICS_PORT", "0", "metrics_port", 0),
    ("LAUNCHGATE_METRICS_ADDR", "127.0.0.1", "metrics_addr", "127.0.0.1"),
    ("LAUNCHGATE_WEBHOOK_URL", " http://hooks.example/x ", "webhook_url", "http://hooks.example/x"),
    ("LAUNCHGATE_WEBHOOK_URL", "  ", "webhook_url", None),
    ("LAUNCHGATE_WEBHOOK_FORMAT", " Slack ", "webhook_format", "slack"),
    ("LAUNCHGATE_WEBHOOK_AUTHORIZATION", "Bearer t0k", "webhook_authorization", "Bearer t0k"),
    ("LAUNCHGATE_WEBHOOK_AUTHORIZATION", "", "webhook_authorization", None),
    ("LAUNCHGATE_WEBHOOK_TIMEOUT", "1.5", "webhook_timeout", 1.5),
    ("LAUNCHGATE_WEBHOOK_RETRIES", "0", "webhook_retries", 0),
    ("LAUNCHGATE_WEBHOOK_QUEUE_SIZE", "16", "webhook_queue_size", 16),
    ("LAUNCHGATE_LEADER_ELECTION", "true", "leader_election", True),
    ("LAUNCHGATE_LEADER_ELECTION_NAMESPACE", "launchgate-system", "leader_election_namespace", "launchgate-system"),
    ("LAUNCHGATE_LEADER_ELECTION_NAMESPACE", "", "leader_election_namespace", None),
    ("LAUNCHGATE_LEADER_ELECTION_LEASE", "lg-shard-0", "leader_election_lease", "lg-shard-0"),
    ("LAUNCHGATE_LEADER_ELECTION_LEASE_DURATION", "30s", "leader_election_lease_duration", 30.0),
    ("LAUNCHGATE_LEADER_ELECTION_RENEW_DEADLINE", "5s", "leader_election_renew_deadline", 5.0),
    ("LAUNCHGATE_LEADER_ELECTION_RETRY_PERIOD", "500ms", "leader_election_retry_period", 0.5),
]


@pytest.mark.parametrize(("variable", "text", "field", "value"), OVERRIDES)
def test_each_setting_is_read_from_its_variable(variable: str, text: str, field: str, value: Any) -> None:
    assert env_name(field) == variable
    config = Config.load({variable: text})
    assert _plain(getattr(config, field)) == value
    others = {name: _plain(getattr(config, name)) for name in DEFAULTS if name != field}
    assert others == {name: v for name, v in DEFAULTS.items() if name != field}


def test_every_setting_has_an_override_case() -> None:
    assert {field for _, _, field, _ in OVERRIDES} == set(DEFAULTS)


@pytest.mark.parametrize(("variable", "text", "says"), [
    ("LAUNCHGATE_PROMETHEUS_TIMEOUT", "10s", "not a number: '10s'"),
    ("LAUNCHGATE_PROMETHEUS_SHARED_TIMEOUT", "30", "invalid duration '30'"),
    ("LAUNCHGATE_PROMETHEUS_TOKEN_FILE", "/nonexistent/token", "cannot read '/nonexistent/token'"),
    ("LAUNCHGATE_SCRAPE_INTERVAL", "0s", "must be more than 0s"),
    ("LAUNCHGATE_SCRAPE_INTERVAL", "15", "invalid duration"),
    ("LAUNCHGATE_GATE_INTERVAL", "3x", "invalid duration '3x'"),
    ("LAUNCHGATE_GATE_INTERVAL", "", "invalid duration ''"),
    ("LAUNCHGATE_MIN_INTERVAL", "0.5s", "invalid duration"),
    ("LAUNCHGATE_QUERY_SHARING", "-5s", "invalid duration"),
    ("LAUNCHGATE_TRIGGER_SETTLE", "10 s", "invalid duration"),
    ("LAUNCHGATE_RECORD_RETENTION", "0s", "must be more than 0s"),
    ("LAUNCHGATE_RECORD_RETENTION", "90d", "invalid duration '90d'"),
    ("LAUNCHGATE_RESYNC_INTERVAL", "5min", "invalid duration"),
    ("LAUNCHGATE_WATCHED_RESYNC_INTERVAL", "1d", "invalid duration"),
    ("LAUNCHGATE_STATUS_HEARTBEAT", "often", "invalid duration"),
    ("LAUNCHGATE_WORKERS", "many", "not a whole number: 'many'"),
    ("LAUNCHGATE_WORKERS", "96.0", "not a whole number"),
    ("LAUNCHGATE_WORKERS", "0", "greater than or equal to 1"),
    ("LAUNCHGATE_STATUS_WRITERS", "four", "not a whole number"),
    ("LAUNCHGATE_API_WRITE_QPS", "fast", "not a number: 'fast'"),
    ("LAUNCHGATE_API_WRITE_QPS", "-1", "greater than or equal to 0"),
    ("LAUNCHGATE_API_WRITE_BURST", "1.5", "not a whole number: '1.5'"),
    ("LAUNCHGATE_API_WRITE_BURST", "0", "greater than or equal to 1"),
    ("LAUNCHGATE_API_RETRY_MAX_DELAY", "0s", "must be more than 0s"),
    ("LAUNCHGATE_API_RETRY_MAX_DELAY", "30", "invalid duration"),
    ("LAUNCHGATE_METRICS_PORT", "http", "not a whole number"),
    ("LAUNCHGATE_METRICS_PORT", "70000", "less than or equal to 65535"),
    ("LAUNCHGATE_WEBHOOK_FORMAT", "xml", "must be json or slack, got 'xml'"),
    ("LAUNCHGATE_WEBHOOK_TIMEOUT", "5s", "not a number"),
    ("LAUNCHGATE_WEBHOOK_RETRIES", "three", "not a whole number"),
    ("LAUNCHGATE_WEBHOOK_QUEUE_SIZE", "0", "greater than or equal to 1"),
    ("LAUNCHGATE_LEADER_ELECTION", "maybe", "valid boolean"),
    ("LAUNCHGATE_LEADER_ELECTION_LEASE_DURATION", "15", "invalid duration"),
    ("LAUNCHGATE_LEADER_ELECTION_RETRY_PERIOD", "soon", "invalid duration"),
])
def test_a_bad_value_is_refused_naming_its_variable(variable: str, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        Config.load({variable: text})
    [problem] = e.value.problems
    assert problem.startswith(f"{variable}: ") and says in problem
    assert isinstance(e.value, ValueError)


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as e:
        Config.load({"LAUNCHGATE_API_WRITE_QPS": "fast", "LAUNCHGATE_API_WRITE_BURST": "1.5"})
    assert [p.split(":")[0] for p in e.value.problems] == ["LAUNCHGATE_API_WRITE_QPS", "LAUNCHGATE_API_WRITE_BURST"]


def test_secrets_are_never_shown() -> None:
    config = Config.load({"LAUNCHGATE_WEBHOOK_URL": "https://hooks.slack.com/services/s3cret",
                          "LAUNCHGATE_WEBHOOK_AUTHORIZATION": "Bearer s3cret", "LAUNCHGATE_PROMETHEUS_TOKEN": "s3cret"})
    assert "s3cret" not in repr(config) and "s3cret" not in str(config)
    assert config.webhook.url == "https://hooks.slack.com/services/s3cret"
    assert config.webhook.authorization == "Bearer s3cret"


@pytest.mark.parametrize(("timeout", "shared", "applies"), [
    ("10", "30s", 30.0),
    ("45", "30s", 45.0),  # never shorter than a single query's timeout
    ("3", "1s", 3.0),
    ("0.5", "500ms", 0.5),
])
def test_the_shared_timeout_is_never_shorter_than_a_querys(timeout: str, shared: str, applies: float) -> None:
    config = Config.load({"LAUNCHGATE_PROMETHEUS_TIMEOUT": timeout, "LAUNCHGATE_PROMETHEUS_SHARED_TIMEOUT": shared})
    assert config.prometheus_shared_timeout == applies
    assert config.prometheus_timeout == float(timeout)


def test_the_token_file_is_read_at_start_up(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    assert Config.load({"LAUNCHGATE_PROMETHEUS_TOKEN_FILE": str(token)}).prometheus_token_file == str(token)
    token.unlink()
    with pytest.raises(ConfigError, match="LAUNCHGATE_PROMETHEUS_TOKEN_FILE: cannot read"):
        Config.load({"LAUNCHGATE_PROMETHEUS_TOKEN_FILE": str(token)})


def test_the_webhook_settings_go_together() -> None:
    webhook = Config.load({"LAUNCHGATE_WEBHOOK_URL": "http://hook", "LAUNCHGATE_WEBHOOK_FORMAT": "SLACK",
                           "LAUNCHGATE_WEBHOOK_TIMEOUT": "2", "LAUNCHGATE_WEBHOOK_RETRIES": "1",
                           "LAUNCHGATE_WEBHOOK_QUEUE_SIZE": "8"}).webhook
    assert (webhook.url, webhook.format, webhook.authorization, webhook.timeout, webhook.retries,
            webhook.queue_size) == ("http://hook", "slack", None, 2.0, 1, 8)
    assert Config.load({}).webhook.url is None


def test_the_process_environment_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Config.load()` reads os.environ through pydantic-settings; `Config.load(mapping)` only the
    mapping. Both must parse alike, and other variables (the dev tools' LAUNCHGATE_CACHE) are ignored."""
    env = {"LAUNCHGATE_GATE_INTERVAL": "1s", "LAUNCHGATE_PROMETHEUS_TIMEOUT": "3", "LAUNCHGATE_API_WRITE_BURST": "",
           "LAUNCHGATE_WEBHOOK_FORMAT": " slack ", "LAUNCHGATE_WORKERS": "8", "LAUNCHGATE_CACHE": "/tmp/x"}
    for name in Config.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert Config.load() == Config.load(env)
    monkeypatch.setenv("LAUNCHGATE_GATE_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="LAUNCHGATE_GATE_INTERVAL: invalid duration 'soon'"):
        Config.load()


def test_a_bad_value_stops_the_operator_before_kopf_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from launchgate.controller import main as controller

    monkeypatch.setenv("LAUNCHGATE_GATE_INTERVAL", "3x")
    monkeypatch.setattr(controller.kopf, "operator", lambda **_: pytest.fail("Kopf started"))
    monkeypatch.setattr(controller.logging, "basicConfig", lambda **_: None)
    with pytest.raises(SystemExit) as e:
        controller.run()
    assert "LAUNCHGATE_GATE_INTERVAL: invalid duration '3x'" in str(e.value.code)


def test_handlers_started_by_kopf_itself_stop_on_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as `kopf run`, the start-up handler reads the settings: a bad one is a permanent error,
    which stops Kopf, rather than a temporary one it retries every minute."""
    import kopf

    from launchgate.controller import handlers

    monkeypatch.setenv("LAUNCHGATE_WORKERS", "lots")
    with pytest.raises(kopf.PermanentError, match="LAUNCHGATE_WORKERS: not a whole number"):
        startup: Any = handlers.startup  # Kopf's decorator types it as a handler Kopf calls
        asyncio.run(startup(settings=kopf.OperatorSettings(), memo=kopf.Memo()))


# --------------------------------------------------------------------------- documented in one place


def test_readme_shows_the_generated_table() -> None:
    readme = (REPO / "README.md").read_text()
    found = re.search(r"<!-- settings table: generated by `python -m launchgate.config --markdown` -->\n"
                      r"(.*?)<!-- end of settings table -->", readme, re.S)
    assert found, "README.md lost its settings table markers"
    assert found.group(1) == markdown_table(), \
        "README.md's settings table is stale: paste `python -m launchgate.config --markdown` between its markers"


def test_the_table_has_a_row_per_setting_and_is_printed_by_the_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--markdown"]) == 0
    printed = capsys.readouterr().out
    assert printed == markdown_table()
    rows = printed.splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{env_name(name)}`" for name in Config.model_fields]
    for name, field in Config.model_fields.items():
        assert field.description and "|" not in field.description and "\n" not in field.description, name


def _deployment_env(path: Path) -> list[dict[str, Any]]:
    docs = list(yaml.safe_load_all(path.read_text()))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return list(container["env"])


# The chart's prometheus.url is where the install's Prometheus is (a required value, filled with the
# Prometheus Operator's usual Service), not a default of the operator's; the manifest sets the same.
INSTALL_SPECIFIC = {"LAUNCHGATE_PROMETHEUS_URL"}
# The operator alone decides by itself (`launchgate run`, tests, benchmarks); the chart and the
# manifest run two replicas, which must elect a leader.
DEPLOYMENT_SPECIFIC = {"LAUNCHGATE_LEADER_ELECTION"}


def test_every_variable_the_chart_sets_is_a_setting_and_its_values_defaults_are_the_operators() -> None:
    template = (CHART / "templates" / "deployment.yaml").read_text()
    fields = {env_name(name) for name in Config.model_fields}
    names = set(re.findall(r"- name: (LAUNCHGATE_[A-Z_]+)", template))
    assert names and names <= fields, names - fields
    # A variable set straight from one value: `value: {{ .Values.a.b | quote }}`, as the template does.
    mapped = dict(re.findall(r"- name: (LAUNCHGATE_[A-Z_]+)\s+value: \{\{ (?:required \"[^\"]*\" )?"
                             r"\.Values\.([A-Za-z0-9_.]+) \| quote \}\}", template))
    assert len(mapped) >= 10, mapped  # the pattern still matches the template
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    default = Config.load({})
    for variable, key in mapped.items():
        value: Any = values
        for part in key.split("."):
            value = value[part]
        if variable in INSTALL_SPECIFIC | DEPLOYMENT_SPECIFIC:
            continue
        field = variable.removeprefix("LAUNCHGATE_").lower()
        set_by_chart = Config.load({variable: str(value)})
        assert getattr(set_by_chart, field) == getattr(default, field), \
            f"values.yaml {key}: {value!r} is not the operator's default for {variable}"


def test_every_variable_the_manifest_sets_is_a_setting_at_the_operators_default() -> None:
    fields = {env_name(name) for name in Config.model_fields}
    env = _deployment_env(REPO / "manifests" / "base" / "operator.yaml")
    assert {e["name"] for e in env} <= fields
    default = Config.load({})
    for e in env:
        if "value" not in e or e["name"] in INSTALL_SPECIFIC | DEPLOYMENT_SPECIFIC:
            continue
        field = e["name"].removeprefix("LAUNCHGATE_").lower()
        assert getattr(Config.load({e["name"]: str(e["value"])}), field) == getattr(default, field), e


@pytest.mark.parametrize(("env", "says"), [
    ({"LAUNCHGATE_LEADER_ELECTION_RENEW_DEADLINE": "15s"}, "lease duration (15s) must be longer than the renew deadline"),
    ({"LAUNCHGATE_LEADER_ELECTION_RETRY_PERIOD": "10s"}, "renew deadline (10s) must be longer than the retry period"),
    ({"LAUNCHGATE_LEADER_ELECTION_RETRY_PERIOD": "0s"}, "retry period must be more than 0s"),
])
def test_unsafe_lease_terms_are_refused_when_electing(env: dict[str, str], says: str) -> None:
    """A standby could otherwise take the Lease over while the holder still decides."""
    with pytest.raises(ConfigError) as e:
        Config.load({"LAUNCHGATE_LEADER_ELECTION": "true", **env})
    [problem] = e.value.problems
    assert problem.startswith("LAUNCHGATE_LEADER_ELECTION_LEASE_DURATION, _RENEW_DEADLINE, _RETRY_PERIOD: ")
    assert says in problem
    assert Config.load(env).leader_election is False  # not electing: the terms are not used
