"""Classification of IMDS answers and transport failures (IMDS.md, "Status codes")."""

from __future__ import annotations

import json

import pytest

from azure_imds_credential._core.classify import (
    MAX_RETRY_AFTER,
    Verdict,
    classify_answer,
    classify_failure,
    parse_retry_after,
)
from azure_imds_credential._core.steps import FailureKind, HttpAnswer, TransportFailure

IMDS = {"server": "IMDS/150.870.65.1325", "content-type": "application/json"}
TOKEN = json.dumps({"access_token": "secret-token", "expires_in": "3599"}).encode()


def err(code: str, description: str = "x") -> bytes:
    return json.dumps({"error": code, "error_description": description}).encode()


@pytest.mark.parametrize(
    ("status", "headers", "body", "verdict"),
    [
        (200, IMDS, TOKEN, Verdict.TOKEN),
        (200, {"content-type": "text/plain"}, TOKEN, Verdict.TOKEN),  # some hosts: text/plain
        (200, {}, b"hello", Verdict.UNAVAILABLE),  # something else on the address
        (200, {}, b"<html><body>GCE metadata</body></html>", Verdict.UNAVAILABLE),
        (200, {}, b'{"instance": {}}', Verdict.UNAVAILABLE),  # foreign JSON
        (400, IMDS, err("invalid_request", "Identity not found"), Verdict.UNAVAILABLE),
        (400, IMDS, err("bad_request_102", "Required metadata header not specified"), Verdict.UNAVAILABLE),
        (
            403,
            {"content-type": "text/plain"},
            b"connecting to 169.254.169.254:80: unreachable network",
            Verdict.UNAVAILABLE,
        ),
        (403, IMDS, err("forbidden"), Verdict.FAILED),  # IMDS itself said 403
        (404, IMDS, err("not_found"), Verdict.UPDATING),
        (410, IMDS, b"", Verdict.UPDATING),
        (429, IMDS, err("too_many_requests"), Verdict.THROTTLED),
        (500, IMDS, err("unknown"), Verdict.TRANSIENT),
        (503, {}, b"", Verdict.TRANSIENT),
        (599, {}, b"", Verdict.TRANSIENT),
        (302, {"location": "http://evil.example/"}, b"", Verdict.UNAVAILABLE),
        (204, {}, b"", Verdict.UNAVAILABLE),
        (401, IMDS, err("unauthorized"), Verdict.FAILED),
        (405, IMDS, b"", Verdict.FAILED),
        (407, {}, b"Proxy Authentication Required", Verdict.FAILED),
    ],
)
def test_classify_answer_gives_verdict_when_status_is(
    status: int, headers: dict[str, str], body: bytes, verdict: Verdict
) -> None:
    assert classify_answer(HttpAnswer(status, headers, body), 0.0).verdict is verdict


def test_classify_answer_carries_imds_error_fields_when_json_error() -> None:
    got = classify_answer(HttpAnswer(400, IMDS, err("invalid_request", "Identity not found")), 0.0)
    assert (got.status, got.error_code, got.error_description) == (
        400,
        "invalid_request",
        "Identity not found",
    )
    assert got.from_imds


def test_classify_answer_marks_not_imds_when_docker_403() -> None:
    got = classify_answer(HttpAnswer(403, {"content-type": "text/plain"}, b"unreachable network"), 0.0)
    assert not got.from_imds


def test_classify_answer_is_unavailable_when_200_truncated() -> None:
    got = classify_answer(HttpAnswer(200, IMDS, TOKEN[:10], truncated=True), 0.0)
    assert got.verdict is Verdict.UNAVAILABLE


def test_classify_answer_redacts_token_when_error_body_echoes_it() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"
    got = classify_answer(HttpAnswer(500, IMDS, err("boom", f"bad token {jwt}")), 0.0)
    assert jwt not in got.summary
    assert got.error_description is not None and jwt not in got.error_description


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "100000"}, MAX_RETRY_AFTER),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
        (
            {"retry-after": "Wed, 21 Oct 2026 07:28:05 GMT", "date": "Wed, 21 Oct 2026 07:28:00 GMT"},
            5.0,
        ),
        ({"retry-after": "Wed, 21 Oct 2026 07:28:05 GMT"}, None),  # no Date to measure against
    ],
)
def test_parse_retry_after_gives_seconds_when_header_is(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert parse_retry_after(headers) == seconds


def test_classify_answer_honours_retry_after_when_429() -> None:
    got = classify_answer(HttpAnswer(429, {"retry-after": "7"}, b""), 0.0)
    assert got.retry_after == 7.0


@pytest.mark.parametrize(
    ("kind", "seen", "short", "verdict"),
    [
        (FailureKind.UNREACHABLE, False, True, Verdict.UNAVAILABLE),  # not on Azure: fail fast
        (FailureKind.CONNECT_TIMEOUT, False, True, Verdict.UNAVAILABLE),  # dropped SYNs
        (FailureKind.UNREACHABLE, True, False, Verdict.TRANSIENT),  # IMDS known: restarting
        (FailureKind.CONNECT_TIMEOUT, True, False, Verdict.TRANSIENT),
        (FailureKind.READ_TIMEOUT, False, True, Verdict.LATE),  # probe it
        (FailureKind.READ_TIMEOUT, False, False, Verdict.TRANSIENT),
        (FailureKind.READ_TIMEOUT, True, False, Verdict.TRANSIENT),
        (FailureKind.RESET, False, True, Verdict.TRANSIENT),
        (FailureKind.RESET, True, False, Verdict.TRANSIENT),
    ],
)
def test_classify_failure_depends_on_whether_imds_was_seen(
    kind: FailureKind, seen: bool, short: bool, verdict: Verdict
) -> None:
    assert classify_failure(TransportFailure(kind), imds_seen=seen, short_wait=short).verdict is verdict
