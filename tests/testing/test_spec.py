"""The `--fault` / `--identity` mini-languages (also the pytest marker's `script=`)."""

from __future__ import annotations

import json

import pytest

from azure_imds_credential.testing import Fault, Identity, Step, parse_duration, parse_fault, parse_identity


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("410:for=16s", Step(Fault.status(410), seconds=16.0)),
        ("429:retry-after=2:times=3", Step(Fault.retry_after(429, 2), times=3)),
        ("500:times=2", Step(Fault.status(500), times=2)),
        ("503", Step(Fault.status(503))),
        ("hang", Step(Fault.hang())),
        ("reset:times=1", Step(Fault.reset(), times=1)),
        ("docker403", Step(Fault.docker_403())),
        ("partial", Step(Fault.partial_body())),
        ("slow", Step(Fault.slow_body(1.0, 4))),
        ("slow=250ms:times=1", Step(Fault.slow_body(0.25, 4), times=1)),
        ("delay=2s", Step(Fault.delay(2.0))),
        ("non-json", Step(Fault.non_json_200())),
        ("html:for=1m", Step(Fault.html_200(), seconds=60.0)),
        ("foreign-json", Step(Fault.foreign_json_200())),
        ("huge=70000", Step(Fault.huge_body(70000))),
        ("huge", Step(Fault.huge_body(1024 * 1024))),
        ("ok:times=2", Step(None, times=2)),
        ("HANG:FOR=500MS", Step(Fault.hang(), seconds=0.5)),
    ],
)
def test_parse_fault_builds_step_when_spec_is_valid(spec: str, expected: Step) -> None:
    assert parse_fault(spec) == expected


def test_parse_fault_sends_retry_after_header_when_given() -> None:
    fault = parse_fault("429:retry-after=2").fault
    assert fault is not None and ("Retry-After", "2") in fault.headers
    assert json.loads(fault.body or b"")["error"] == "too_many_requests"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("410:", "empty"),
        ("999", "out of range"),
        ("teapot", "unknown fault"),
        ("410:times=0", "times"),
        ("410:times=x", "times"),
        ("410:for=soon", "duration"),
        ("410:for=0s", "> 0"),
        ("410:every=2", "unknown option"),
        ("hang:retry-after=2", "retry-after"),
        ("delay", "delay needs a value"),
        ("hang=1", "takes no value"),
        ("410=1", "no value"),
    ],
)
def test_parse_fault_raises_value_error_when_spec_is_invalid(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(spec)


@pytest.mark.parametrize(
    ("text", "seconds"), [("16s", 16.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5)]
)
def test_parse_duration_returns_seconds_when_unit_given(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_identity_builds_identities_when_spec_is_valid() -> None:
    assert parse_identity("system") == Identity.system()
    assert parse_identity("user:app") == Identity.user_assigned("app")
    custom = parse_identity("user:app:client_id=c-1:object_id=o-1")
    assert (custom.client_id, custom.object_id) == ("c-1", "o-1")
    assert custom.msi_res_id == Identity.user_assigned("app").msi_res_id
    assert parse_identity("user:a:msi_res_id=/subscriptions/s/x").msi_res_id == "/subscriptions/s/x"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("admin", "not an identity"),
        ("user:", "not an identity"),
        ("user:client_id=1", "name first"),
        ("user:a:tenant=1", "unknown identity option"),
        ("user:a:client_id=", "needs a value"),
    ],
)
def test_parse_identity_raises_value_error_when_spec_is_invalid(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_identity(spec)
