"""The retry schedule."""

from __future__ import annotations

import pytest

from azure_imds_credential import RetryPolicy
from azure_imds_credential._core.classify import Verdict
from azure_imds_credential._core.retry import retry_delay

POLICY = RetryPolicy()


@pytest.mark.parametrize("random", [0.0, 0.5, 0.999])
def test_retry_delay_keeps_trying_updating_for_70_s_with_gaps_under_5_s(random: float) -> None:
    elapsed, retry = 0.0, 0
    while True:
        retry += 1
        delay = retry_delay(POLICY, Verdict.UPDATING, retry, elapsed, None, random)
        if delay is None:
            break
        assert delay < 5.0  # a recovered IMDS is seen within 5 s
        elapsed += delay
        assert retry < 1000
    assert elapsed >= 70.0


@pytest.mark.parametrize("verdict", [Verdict.TRANSIENT, Verdict.THROTTLED])
def test_retry_delay_gives_up_after_five_retries_when_transient(verdict: Verdict) -> None:
    delays = [retry_delay(POLICY, verdict, n, 0.0, None, 0.5) for n in range(1, 7)]
    assert all(d is not None for d in delays[:5])
    assert delays[5] is None


@pytest.mark.parametrize("random", [0.0, 0.999])
def test_retry_delay_waits_at_least_a_second_when_5xx(random: float) -> None:
    for n in range(1, 6):
        delay = retry_delay(POLICY, Verdict.TRANSIENT, n, 0.0, None, random)
        assert delay is not None and delay >= 1.0


def test_retry_delay_grows_when_retries_continue() -> None:
    delays = [retry_delay(POLICY, Verdict.TRANSIENT, n, 0.0, None, 0.0) for n in range(1, 6)]
    assert delays == sorted(delays) and delays[-1] > delays[0]  # type: ignore[type-var]


def test_retry_delay_jitter_spreads_clients_when_random_differs() -> None:
    low = retry_delay(POLICY, Verdict.TRANSIENT, 3, 0.0, None, 0.0)
    high = retry_delay(POLICY, Verdict.TRANSIENT, 3, 0.0, None, 0.999)
    assert low != high


def test_retry_delay_honours_retry_after_when_given() -> None:
    assert retry_delay(POLICY, Verdict.THROTTLED, 1, 0.0, 7.0, 0.5) == 7.0


@pytest.mark.parametrize("verdict", [Verdict.UNAVAILABLE, Verdict.FAILED, Verdict.TOKEN, Verdict.LATE])
def test_retry_delay_is_none_when_verdict_not_retryable(verdict: Verdict) -> None:
    assert retry_delay(POLICY, verdict, 1, 0.0, None, 0.5) is None


@pytest.mark.parametrize(
    "kwargs", [{"max_retries": -1}, {"jitter": 1.0}, {"first_delay": 5.0, "max_delay": 1.0}, {"growth": 0.5}]
)
def test_retry_policy_raises_when_invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("verdict", [Verdict.UPDATING, Verdict.THROTTLED, Verdict.TRANSIENT])
def test_retry_delay_keeps_schedule_when_retry_after_is_zero(verdict: Verdict) -> None:
    # Found by the fuzzer: "Retry-After: 0" on a 410 turned 70 s of retries into a busy loop.
    for retry in range(1, 4):
        delay = retry_delay(POLICY, verdict, retry, 0.0, 0.0, 0.5)
        assert delay is not None and delay >= POLICY.first_delay
