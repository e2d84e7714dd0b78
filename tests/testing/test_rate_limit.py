"""IMDS's own throttling (20 requests/s, 5 concurrent per VM), switched on by a flag."""

from __future__ import annotations

import http.client

import pytest

from azure_imds_credential import ImdsManagedIdentityCredential
from azure_imds_credential.testing import Fault, ImdsEmulator, RateLimit
from tests.conftest import FakeClock
from tests.testing.helpers import SCOPE, Background, SettableClock, fetch, wait_until


def test_rate_limit_answers_429_when_sixth_request_is_concurrent() -> None:
    imds = ImdsEmulator(rate_limit=True, latency=30.0).start()
    try:
        # Five requests held by IMDS's (emulated) mint latency fill the concurrency budget.
        held = [Background(lambda: fetch(imds.port, timeout=20)) for _ in range(5)]
        wait_until(lambda: imds.max_in_flight == 5)
        reply = fetch(imds.port)  # answered at once: throttling comes before the latency
        assert reply.status == 429
        assert reply.json()["error"] == "too_many_requests"
        assert reply.headers["server"].startswith("IMDS/")
        assert "retry-after" not in reply.headers
        assert imds.token_requests[-1].fault == "rate_limit"
    finally:
        imds.stop()
    for client in held:
        assert isinstance(client.join(), http.client.RemoteDisconnected)


def test_rate_limit_answers_429_when_more_than_20_requests_in_one_second() -> None:
    clock = SettableClock()
    with ImdsEmulator(rate_limit=True, clock=clock) as imds:
        assert [fetch(imds.port).status for _ in range(20)] == [200] * 20
        assert fetch(imds.port).status == 429
        clock.now += 0.999
        assert fetch(imds.port).status == 429  # the first 20 are still within the last second
        clock.now += 0.001
        assert fetch(imds.port).status == 200


def test_rate_limit_is_off_when_flag_not_given() -> None:
    clock = SettableClock()
    with ImdsEmulator(clock=clock) as imds:
        assert {fetch(imds.port).status for _ in range(25)} == {200}


def test_rate_limit_keeps_faults_and_ignores_probes_when_throttling() -> None:
    clock = SettableClock()
    with ImdsEmulator(rate_limit=RateLimit(per_second=1), clock=clock) as imds:
        imds.push(Fault.status(503))
        assert fetch(imds.port).status == 503
        assert fetch(imds.port, headers={}).status == 400  # header-less: refused, not throttled
        assert fetch(imds.port).status == 429  # throttled before the queue is looked at
        clock.now += 1
        assert fetch(imds.port).status == 200


def test_credential_recovers_from_rate_limit_when_it_backs_off(clock: FakeClock) -> None:
    # The emulator reads the credential's fake clock, so its back-off sleeps open the next
    # second of IMDS's budget without any real waiting.
    with (
        ImdsEmulator(rate_limit=RateLimit(per_second=1), clock=clock.time) as imds,
        ImdsManagedIdentityCredential(endpoint=imds.endpoint, clock=clock) as credential,
    ):
        credential.get_token(SCOPE)
        token = credential.get_token("https://vault.azure.net/.default")
    assert [r.status for r in imds.token_requests] == [200, 429, 200]
    assert token.token == imds.issued_tokens()[-1]
    assert sum(clock.sleeps) >= 1.0  # it waited out the throttled second (on the fake clock)


@pytest.mark.parametrize("limits", [{"per_second": 0}, {"concurrent": 0}])
def test_rate_limit_raises_value_error_when_limit_is_below_one(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="rate limits"):
        RateLimit(**limits)
