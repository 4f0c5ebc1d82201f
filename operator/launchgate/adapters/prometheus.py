"""Where numbers come from: a small Protocol, and its Prometheus implementation.

The engine only needs "run this instant query at this time", so it depends on `MetricsSource`,
not on an HTTP client; unit tests and benchmarks can plug in something else.

`PrometheusSource` is synchronous (requests underneath). The operator calls it through
`asyncio.to_thread(...)` so a slow or unreachable Prometheus never blocks Kopf's event loop;
the CLI calls it directly. It never raises for Prometheus' failures: an unreachable server or a
bad query becomes missing data with a reason ("prometheus unreachable: ...", "query error: ..."),
which the gate logic turns into hold (never allow).

`timeout` bounds a whole request: connecting, sending, and every byte of the answer. requests'
own timeout bounds each socket operation, so a server (or a proxy) that sends a byte every few
seconds would hold a worker thread for ever; here each read is also cut off at the request's
deadline. There are no watchdog threads: the calling thread enforces its own deadline.
"""

from __future__ import annotations

import ast
import http.client
import io
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from requests.adapters import HTTPAdapter, Retry
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

from launchgate.adapters import metrics
from launchgate.core.gates import QUERY_ERROR, UNREACHABLE, QueryResult, RawResponse, from_prometheus
from launchgate.core.protocols import MetricsSource  # noqa: F401 - the protocol this module fulfils

_STATUS = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.S)


def _error_from_exception(e: PrometheusApiClientException) -> str:
    """prometheus-api-client folds the response into its message; dig Prometheus' error back out."""
    text = str(e)
    m = _STATUS.match(text)
    if m:
        status, body = m.group(1), m.group(2)
        try:
            content = ast.literal_eval(body)
            payload = json.loads(content.decode() if isinstance(content, bytes) else content)
            return f"{QUERY_ERROR}: {payload.get('error', 'unknown')} (HTTP {status}, {payload.get('errorType', '?')})"
        except (ValueError, SyntaxError, AttributeError, UnicodeDecodeError):
            # Not Prometheus talking: a proxy or load balancer in front of it.
            if status in ("502", "503", "504"):
                return f"{UNREACHABLE}: HTTP {status} from a proxy in front of Prometheus"
            if status == "404":
                return f"{QUERY_ERROR}: HTTP 404 (is the URL Prometheus' base URL?)"
            return f"{QUERY_ERROR}: HTTP {status}"
    return f"{QUERY_ERROR}: {text}"


# The deadline (time.monotonic()) of the request this thread is sending, if any. Requests are
# synchronous and a pooled connection belongs to one thread while it is in use, so a thread-local
# reaches every socket operation of exactly that request.
_request = threading.local()


def _left() -> float | None:
    """Seconds until this thread's request deadline (negative once past), or None without one."""
    at: float | None = getattr(_request, "deadline", None)
    return None if at is None else at - time.monotonic()


def _clipped(timeout: Any) -> Any:
    """A socket timeout that does not reach past this thread's deadline (urllib3 passes a number,
    None, or its own "default" marker)."""
    left = _left()
    if left is None:
        return timeout
    left = max(left, 0.001)  # past the deadline: fail the next operation at once
    return min(timeout, left) if isinstance(timeout, int | float) else left


class _DeadlineReader(io.RawIOBase):
    """The bytes of one response, each socket read given only the time left before the deadline."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._timeout = sock.gettimeout()  # the read timeout urllib3 set for this response
        # The socket's own reader: it keeps the socket open while the response is read, even
        # after the connection lets go of it (a "Connection: close" answer).
        self._raw = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = _left()
        if left is not None:
            if left <= 0:
                raise TimeoutError("request deadline passed")
            self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        n: int | None = self._raw.readinto(buffer)
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _SocketView:
    """What http.client.HTTPResponse reads from: the socket, through a _DeadlineReader."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock))


class _DeadlineResponse(http.client.HTTPResponse):
    """Status line, headers and body are all read through the deadline, so none can trickle."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(_SocketView(sock), *args, **kwargs)  # type: ignore[arg-type]


class _Bounded:
    """Connecting and sending never reach past the deadline either."""

    timeout: Any
    response_class: type[http.client.HTTPResponse] = _DeadlineResponse

    def _new_conn(self) -> Any:
        self.timeout = _clipped(self.timeout)
        return super()._new_conn()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        self.timeout = _clipped(self.timeout)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _BoundedHTTPConnection(_Bounded, HTTPConnection):
    pass


class _BoundedHTTPSConnection(_Bounded, HTTPSConnection):
    pass


class _BoundedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _BoundedHTTPConnection


class _BoundedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _BoundedHTTPSConnection


_BOUNDED_POOLS = {"http": _BoundedHTTPPool, "https": _BoundedHTTPSPool}


class _BoundedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections (direct or through an HTTP proxy) honour the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _BOUNDED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers bring their own pool classes
            manager.pool_classes_by_scheme = _BOUNDED_POOLS
        return manager


def _reshape(result: Any) -> dict[str, Any]:
    """PrometheusConnect.custom_query returns only `result`; recover `resultType` from its shape."""
    if isinstance(result, list) and all(isinstance(x, dict) for x in result):
        if any("values" in x for x in result):
            return {"resultType": "matrix", "result": result}
        return {"resultType": "vector", "result": result}
    if isinstance(result, list) and len(result) == 2:
        try:
            float(result[1])
        except (TypeError, ValueError):
            return {"resultType": "string", "result": result}
        return {"resultType": "scalar", "result": result}
    return {"resultType": "unknown", "result": result}


class PrometheusSource:
    """A MetricsSource backed by a Prometheus HTTP API (via prometheus-api-client).

    `queries_issued` counts HTTP queries for benchmarks (Prometheus queries per window).
    Thread-safe: the operator may evaluate several rollouts in worker threads at once.

    `timeout` (seconds) bounds each query from connect to the last byte, retries included.
    `deadline` (a time.monotonic() value) bounds them all: a query never runs past it, and none
    is sent after it, so a command that asks several queries ends in time whatever the server does.
    """

    def __init__(
        self,
        url: str,
        *,
        bearer_token: str | None = None,
        token_file: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        insecure_skip_verify: bool = False,
        timeout: float = 10.0,
        retries: int = 1,
        pool_size: int = 32,
        deadline: float | None = None,
    ) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            # Every query would fail: a misconfiguration to refuse at start-up, not a hold for ever.
            raise ValueError(f"prometheus timeout must be a positive number of seconds, got {timeout!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        # A token file (a mounted Secret or projected ServiceAccount token) is re-read when it
        # changes: kubelet rotates projected tokens, and a token read once at start-up expires.
        self._token_file = token_file
        self._token_stamp: tuple[float, int] | None = None
        self._token_checked = 0.0
        if token_file is not None:
            bearer_token = self._read_token()  # a missing file fails here, at start-up
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        session = requests.Session()
        # The environment (proxies, CA bundle) is read once here instead of on every request:
        # requests re-reads it per call when trust_env is on, a measurable share of operator CPU.
        session.trust_env = False
        session.proxies = dict(requests.utils.get_environ_proxies(self.url))
        env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        session.verify = False if insecure_skip_verify else (ca_file or env_ca or True)
        # Few, fast retries: the operator re-evaluates next interval anyway, and a long retry
        # ladder would only delay the "unreachable -> hold" answer.
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,
            backoff_factor=0.2,
            status_forcelist=[502, 503, 504],
            raise_on_status=False,  # hand the last response back, so Prometheus' own error is reported
        )
        self._pc = PrometheusConnect(
            url=self.url,
            headers=headers,
            auth=basic_auth,
            session=session,
            retry=retry,
            timeout=timeout,
        )
        # As many pooled connections as worker threads; the default 10 makes the rest reconnect.
        # The scheme prefixes too, so a redirect to another host is bounded by the deadline as well.
        adapter = _BoundedAdapter(max_retries=retry, pool_maxsize=pool_size)
        for prefix in ("http://", "https://", self.url):
            session.mount(prefix, adapter)
        self._lock = threading.Lock()
        self.queries_issued = 0

    def __repr__(self) -> str:
        return f"PrometheusSource({self.url!r})"

    def close(self) -> None:
        self._pc.close()

    def _params(self, at: datetime | None) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        return params

    def _read_token(self) -> str:
        assert self._token_file is not None
        st = os.stat(self._token_file)
        with open(self._token_file) as f:
            token = f.read().strip()
        self._token_stamp = (st.st_mtime, st.st_size)
        self._token_checked = time.monotonic()
        return token

    def _refresh_token(self) -> None:
        """At most every 10 s, a stat of the token file; a changed file is read again."""
        now = time.monotonic()
        if self._token_file is None or now - self._token_checked < 10.0:
            return
        self._token_checked = now
        try:
            st = os.stat(self._token_file)
            if (st.st_mtime, st.st_size) != self._token_stamp:
                self._pc.headers = {"Authorization": f"Bearer {self._read_token()}"}
        except OSError:
            pass  # kubelet swaps the file atomically; a missing moment keeps the last token

    def _post(self, promql: str, params: dict[str, Any], path: str, deadline: float) -> Any:
        self._refresh_token()
        pc = self._pc
        _request.deadline = deadline
        try:
            resp = pc._session.post(
                f"{self.url}{path}",
                data={"query": promql, **params},
                headers=pc.headers,
                auth=pc.auth,
                timeout=self.timeout,
            )
        finally:
            _request.deadline = None
        if resp.status_code != 200:
            raise PrometheusApiClientException(f"HTTP Status Code {resp.status_code} ({resp.content!r})")
        # orjson, not requests' json(): a fleet-wide answer is megabytes, decoding it is a large
        # share of the operator's CPU at 10,000 rollouts, and orjson decodes it faster.
        return orjson.loads(resp.content)["data"]

    def query_raw(self, promql: str, at: datetime | None = None) -> RawResponse:
        # Always a POST body: long URLs are cut by proxies, and re-quoting a URL costs more CPU
        # than form-encoding a body.
        return self._ask(promql, self._params(at), "/api/v1/query", matrix=False)

    def query_range_raw(self, promql: str, start: datetime, end: datetime, step: float) -> RawResponse:
        """A range query's `data` (resultType matrix), evaluated at start, start + step, ... <= end.

        Prometheus does not align start to the step: the caller's times are the evaluation times,
        to the millisecond. `step` is in seconds, also to the millisecond. Never raises for
        Prometheus' failures, like query_raw.
        """
        step_ms = round(step * 1000)
        if step_ms <= 0:
            return RawResponse(error=f"{QUERY_ERROR}: range query step must be at least 1ms")
        params: dict[str, Any] = {"timeout": f"{self.timeout:g}s", "start": f"{start.timestamp():.3f}",
                                  "end": f"{end.timestamp():.3f}", "step": f"{step_ms}ms"}
        return self._ask(promql, params, "/api/v1/query_range", matrix=True)

    def _ask(self, promql: str, params: dict[str, Any], path: str, matrix: bool) -> RawResponse:
        now = time.monotonic()
        deadline, overall = now + self.timeout, False
        if self.deadline is not None and self.deadline < deadline:
            if self.deadline <= now:
                return RawResponse(error=f"{UNREACHABLE}: the overall deadline passed before this query was sent")
            deadline, overall = self.deadline, True
        with self._lock:
            self.queries_issued += 1
            metrics.observe_prometheus_queries()
        try:
            data = self._post(promql, params, path, deadline)
            kind, result = data.get("resultType"), data["result"]
        except PrometheusApiClientException as e:
            return RawResponse(error=_error_from_exception(e))
        except requests.RequestException as e:
            if time.monotonic() >= deadline - 0.05:  # the deadline, not another failure, ended it
                within = "before the overall deadline" if overall else f"within the {self.timeout:g}s timeout"
                return RawResponse(error=f"{UNREACHABLE}: no complete answer {within}")
            return RawResponse(error=f"{UNREACHABLE}: {_short(e)}")
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # a non-JSON or odd body from a proxy
            return RawResponse(error=f"{QUERY_ERROR}: unexpected response ({e})")
        if matrix:  # a range query always answers a matrix; _reshape would call an empty one a vector
            return RawResponse(data={"resultType": "matrix", "result": result})
        return RawResponse(data={"resultType": kind, "result": result} if isinstance(kind, str) else _reshape(result))

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        raw = self.query_raw(promql, at)
        if raw.error is not None:
            return QueryResult.unavailable(raw.error)
        return from_prometheus(raw.data)


def _short(e: Exception) -> str:
    """requests' connection errors nest three exceptions deep; keep the last, most telling line."""
    text = str(e)
    m = re.search(r"\[Errno -?\d+\][^')\"]*", text)
    if m:
        return m.group(0).strip()
    return text if len(text) <= 200 else text[:197] + "..."


def _first(config: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        v = config.get(k)
        if v not in (None, ""):
            return v
    return None


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("1", "true", "yes", "on")


def source_from_config(config: Mapping[str, Any], *, default_url: str | None = None) -> PrometheusSource:
    """Build a PrometheusSource from a flat dict, e.g. a Secret's decoded `data`.

    Keys (camelCase or snake_case): url/address, token/bearerToken or tokenFile (re-read when it
    changes), username + password,
    caFile (a path) or ca.crt/caCert (PEM text, written to a private temp file because requests
    only takes paths), insecureSkipVerify, timeout (seconds). ValueError names a missing URL.
    """
    url = _first(config, "url", "address", "prometheusURL", "prometheus_url") or default_url
    if not url:
        raise ValueError("prometheus config: 'url' is required")
    token = _first(config, "token", "bearerToken", "bearer_token")
    user = _first(config, "username", "user")
    password = _first(config, "password")
    basic = (str(user), str(password or "")) if user else None
    ca_file = _first(config, "caFile", "ca_file")
    ca_pem = _first(config, "ca.crt", "caCert", "ca_cert")
    if ca_pem and not ca_file:
        with tempfile.NamedTemporaryFile("w", prefix="launchgate-ca-", suffix=".crt", delete=False) as f:
            f.write(str(ca_pem))
            ca_file = f.name
    timeout = float(_first(config, "timeout") or 10.0)
    return PrometheusSource(
        str(url),
        bearer_token=str(token).strip() if token else None,
        token_file=_first(config, "tokenFile", "token_file"),
        basic_auth=basic,
        ca_file=str(ca_file) if ca_file else None,
        insecure_skip_verify=_truthy(_first(config, "insecureSkipVerify", "insecure_skip_verify") or False),
        timeout=timeout,
        pool_size=int(_first(config, "poolSize", "pool_size") or 32),
    )
