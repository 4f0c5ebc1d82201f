"""prom.py's pure parts: building a source from a Secret-like dict, and reading errors back."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_api_client import PrometheusApiClientException

from launchgate.adapters.prometheus import (
    MetricsSource,
    PrometheusSource,
    _error_from_exception,
    _reshape,
    source_from_config,
)


def test_source_from_config_token_and_tls(tmp_path: Path) -> None:
    src = source_from_config({"url": "https://prom.example:9090/", "token": " s3cret\n", "insecureSkipVerify": "true",
                              "timeout": "5"})
    assert src.url == "https://prom.example:9090"
    assert src._pc.headers == {"Authorization": "Bearer s3cret"}
    assert src._pc._session.verify is False
    assert src.timeout == 5.0
    assert isinstance(src, MetricsSource)


def test_source_from_config_basic_auth_and_ca_pem() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    src = source_from_config({"address": "https://p", "username": "u", "password": "p", "ca.crt": pem})
    assert src._pc.auth == ("u", "p")
    ca = Path(str(src._pc._session.verify))
    try:
        assert ca.read_text() == pem
    finally:
        ca.unlink()


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_a_timeout_that_fails_every_query_is_refused(timeout: str) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        source_from_config({"url": "http://p", "timeout": timeout})


def test_source_from_config_needs_a_url() -> None:
    with pytest.raises(ValueError, match="'url' is required"):
        source_from_config({"token": "x"})
    assert source_from_config({}, default_url="http://p").url == "http://p"


def test_error_from_prometheus_body() -> None:
    body = b'{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}'
    e = PrometheusApiClientException(f"HTTP Status Code 400 ({body!r})")
    assert _error_from_exception(e) == "query error: 1:5: parse error: unclosed left parenthesis (HTTP 400, bad_data)"
    assert _error_from_exception(PrometheusApiClientException("HTTP Status Code 502 (b'<html>')")) == (
        "prometheus unreachable: HTTP 502 from a proxy in front of Prometheus"
    )
    assert _error_from_exception(PrometheusApiClientException("HTTP Status Code 401 (b'denied')")) == (
        "query error: HTTP 401"
    )


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        ([], "vector"),
        ([{"metric": {}, "value": [1, "1"]}], "vector"),
        ([{"metric": {}, "values": [[1, "1"]]}], "matrix"),
        ([1.0, "2"], "scalar"),
        ([1.0, "NaN"], "scalar"),
        ([1.0, "hello"], "string"),
    ],
)
def test_reshape(result: list[object], kind: str) -> None:
    assert _reshape(result)["resultType"] == kind


def test_counts_queries_even_when_unreachable() -> None:
    src = PrometheusSource("http://127.0.0.1:9", timeout=2, retries=0)
    r = src.query("up")
    assert r.missing is not None and r.missing.startswith("prometheus unreachable: ")
    assert src.queries_issued == 1


def test_range_queries_are_counted_and_never_raise() -> None:
    src = PrometheusSource("http://127.0.0.1:9", timeout=2, retries=0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    r = src.query_range_raw("up", start, start + timedelta(seconds=5), 1.0)
    assert r.data is None and r.error is not None and r.error.startswith("prometheus unreachable: ")
    assert src.query_range_raw("up", start, start, 0.0001).error == "query error: range query step must be at least 1ms"
    assert src.queries_issued == 1


def test_environment_is_read_once_at_construction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """trust_env is off for speed, so the proxy and CA-bundle variables must be honoured up front."""
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "skip.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    src = PrometheusSource("https://prom.example:9090")
    session = src._pc._session
    assert session.trust_env is False
    assert session.proxies.get("https") == "http://proxy.internal:3128"
    assert session.verify == str(bundle)
    assert PrometheusSource("https://skip.example")._pc._session.proxies == {}
    assert PrometheusSource("https://p", ca_file="/etc/ca.crt")._pc._session.verify == "/etc/ca.crt"
    assert PrometheusSource("https://p", insecure_skip_verify=True)._pc._session.verify is False
    adapter = session.get_adapter("https://prom.example:9090/api/v1/query")
    assert adapter._pool_maxsize == 32


def test_a_rotated_token_file_is_used_for_the_next_queries(tmp_path: Path) -> None:
    """Projected ServiceAccount tokens are rotated by kubelet; a token read once would expire."""
    token = tmp_path / "token"
    token.write_text("first\n")
    src = source_from_config({"url": "http://p", "tokenFile": str(token)})
    assert src._pc.headers == {"Authorization": "Bearer first"}
    token.write_text("second-and-longer\n")
    src._refresh_token()  # within 10 s of construction: not even a stat yet
    assert src._pc.headers == {"Authorization": "Bearer first"}
    src._token_checked -= 11
    src._refresh_token()
    assert src._pc.headers == {"Authorization": "Bearer second-and-longer"}
    token.unlink()  # kubelet swaps the file: a missing moment keeps the last token
    src._token_checked -= 11
    src._refresh_token()
    assert src._pc.headers == {"Authorization": "Bearer second-and-longer"}
    with pytest.raises(FileNotFoundError):
        source_from_config({"url": "http://p", "tokenFile": str(tmp_path / "missing")})


@pytest.mark.parametrize("body, expected", [
    (b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"]}]}}',
     {"resultType": "vector", "result": [{"metric": {}, "value": [1, "2"]}]}),
    (b'{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}', {"resultType": "scalar", "result": [1, "2"]}),
    (b'{"status":"success","data":{"result":[1,"2"]}}', {"resultType": "scalar", "result": [1, "2"]}),  # no type: guessed
    (b"<html>bad gateway</html>", "query error: unexpected response"),
    (b'["a list"]', "query error: unexpected response"),
    (b'{"status":"success","data":[1]}', "query error: unexpected response"),
    (b'{"status":"success"}', "query error: unexpected response"),
])
def test_answers_and_odd_bodies_from_a_real_http_server(body: bytes, expected: object) -> None:
    """What a proxy or an older Prometheus may send: never an exception, odd bodies are errors."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = PrometheusSource(f"http://127.0.0.1:{server.server_address[1]}", timeout=5, retries=0)
        raw = src.query_raw("up")
    finally:
        server.shutdown()
    if isinstance(expected, str):
        assert raw.data is None and raw.error is not None and raw.error.startswith(expected), raw
    else:
        assert raw.error is None and raw.data == expected
