"""The client-side write limit: a token bucket like client-go's QPS/Burst, on a fake clock."""

from __future__ import annotations

import pytest

from launchgate.adapters.kube import WriteLimiter, write_limiter_for
from launchgate.config import Config


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_a_burst_goes_at_once_and_the_rest_are_spaced_by_one_over_qps() -> None:
    clock = Clock()
    limiter = WriteLimiter(qps=10, burst=3, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(6)]  # six writes in the same instant
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])
    assert clock.slept == pytest.approx([0.1, 0.2, 0.3])


def test_idle_time_refills_the_bucket_but_never_past_the_burst() -> None:
    clock = Clock()
    limiter = WriteLimiter(qps=2, burst=2, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(2)] == [0, 0]
    clock.now += 0.5  # one token back
    assert limiter.acquire() == 0
    assert limiter.acquire() == pytest.approx(0.5)
    clock.now += 3600  # an hour idle: still only `burst` at once
    assert [limiter.acquire() for _ in range(3)] == pytest.approx([0, 0, 0.5])


def test_the_average_rate_is_the_qps() -> None:
    """Writes arriving faster than the limit leave at the limit: 100 writes at 20/s with a burst of
    5 take (100 - 5) / 20 seconds of waiting for the last one."""
    clock = Clock()
    limiter = WriteLimiter(qps=20, burst=5, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(100)]
    assert waits[-1] == pytest.approx(95 / 20)


@pytest.mark.parametrize(("env", "qps", "burst"), [
    ({}, None, None),
    ({"LAUNCHGATE_API_WRITE_QPS": "0"}, None, None),
    ({"LAUNCHGATE_API_WRITE_QPS": "50"}, 50.0, 100),
    ({"LAUNCHGATE_API_WRITE_QPS": "0.5"}, 0.5, 1),
    ({"LAUNCHGATE_API_WRITE_QPS": "40", "LAUNCHGATE_API_WRITE_BURST": "80"}, 40.0, 80),
])
def test_the_limit_comes_from_the_environment(env: dict[str, str], qps: float | None, burst: int | None) -> None:
    config = Config.load(env)
    limiter = write_limiter_for(config.api_write_qps, config.api_write_burst)
    got = None if limiter is None else (limiter.qps, limiter.burst)
    assert got == (None if qps is None else (qps, burst))


@pytest.mark.parametrize(("env", "named"), [
    ({"LAUNCHGATE_API_WRITE_QPS": "fast"}, "LAUNCHGATE_API_WRITE_QPS"),
    ({"LAUNCHGATE_API_WRITE_QPS": "-1"}, "LAUNCHGATE_API_WRITE_QPS"),
    ({"LAUNCHGATE_API_WRITE_QPS": "10", "LAUNCHGATE_API_WRITE_BURST": "1.5"}, "LAUNCHGATE_API_WRITE_BURST"),
    ({"LAUNCHGATE_API_WRITE_QPS": "10", "LAUNCHGATE_API_WRITE_BURST": "0"}, "LAUNCHGATE_API_WRITE_BURST"),
])
def test_a_bad_setting_is_refused_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Config.load(env)


def test_a_limit_of_zero_is_refused_by_the_limiter_itself() -> None:
    with pytest.raises(ValueError):
        WriteLimiter(qps=0)
