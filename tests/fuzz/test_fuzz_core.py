"""Property tests of the pure core: whatever comes back from the IMDS address, the core
answers with a verdict or one of our documented errors, never crashes, never accepts an
unusable token and never puts a token into a message."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from azure_imds_credential import CredentialUnavailableError, ImdsError, RetryPolicy, TokenQuery
from azure_imds_credential._core.classify import (
    MAX_RETRY_AFTER,
    RETRYABLE,
    Verdict,
    classify_answer,
    parse_retry_after,
)
from azure_imds_credential._core.flow import Timeouts, TokenFlow
from azure_imds_credential._core.redact import redact
from azure_imds_credential._core.steps import FailureKind, HttpAnswer, Received, Sleep, TransportFailure
from azure_imds_credential._core.token import InvalidTokenResponse, parse_token

SENT_AT = 1_700_000_000.0
# A JWT-shaped secret planted in bodies: it must never reach a message.
SECRET = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3N0b3JhZ2UifQ.c2VjcmV0LXNpZ25hdHVyZQ"

numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=12),
    st.none(),
    st.booleans(),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
token_values = st.one_of(st.just(SECRET), st.text(max_size=40), st.integers(), st.none())
token_like = st.fixed_dictionaries(
    {},
    optional={
        "access_token": token_values,
        "expires_in": numbers,
        "expires_on": numbers,
        "ext_expires_in": numbers,
        "not_before": numbers,
        "resource": json_values,
        "token_type": json_values,
        "client_id": json_values,
        "refresh_token": token_values,
        "error": st.one_of(st.text(max_size=30), st.just(SECRET), json_values),
        "error_description": st.one_of(st.text(max_size=60), st.just(f"bad token {SECRET}"), json_values),
    },
)


def _encode(data: Any) -> bytes:
    return json.dumps(data, allow_nan=True).encode()


bodies = st.one_of(
    token_like.map(_encode),
    json_values.map(_encode),
    st.binary(max_size=300),
    token_like.map(_encode).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),  # truncated
    st.just(b"<html><body>Metadata server</body></html>"),
    st.just(b"\xff\xfe\x00garbage"),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
headers = st.dictionaries(
    st.sampled_from(["server", "retry-after", "date", "content-type", "x-other"]),
    st.one_of(st.text(max_size=40), st.just("IMDS/150.870.65.1325"), st.just(SECRET)),
    max_size=4,
)
statuses = st.one_of(
    st.sampled_from([200, 200, 200, 400, 403, 404, 410, 429, 500, 503]), st.integers(100, 999)
)
answers = st.builds(HttpAnswer, statuses, headers, bodies, st.booleans())


@given(answers)
def test_classify_answer_never_crashes_and_never_leaks_token_when_answer_is_arbitrary(
    answer: HttpAnswer,
) -> None:
    got = classify_answer(answer, SENT_AT)
    assert isinstance(got.verdict, Verdict)
    for text in (got.summary, got.error_code or "", got.error_description or ""):
        assert SECRET not in text
    if got.verdict is Verdict.TOKEN:
        token = got.token
        assert token is not None and answer.status == 200 and not answer.truncated
        assert token.access_token.strip() and not any(c.isspace() for c in token.access_token)
        assert 0 < token.expires_in <= 366 * 24 * 3600
        assert token.local_expires_on > SENT_AT
        assert SECRET not in repr(token)
    else:
        assert got.token is None
    if got.retry_after is not None:
        assert got.verdict in RETRYABLE and 0.0 <= got.retry_after <= MAX_RETRY_AFTER


@given(bodies)
def test_parse_token_raises_only_invalid_token_response_when_body_is_arbitrary(body: bytes) -> None:
    try:
        token = parse_token(body, SENT_AT)
    except InvalidTokenResponse as exc:
        assert SECRET not in str(exc)
    else:
        assert token.expires_in > 0 and token.access_token


@given(headers)
def test_parse_retry_after_is_none_or_bounded_when_header_is_arbitrary(values: dict[str, str]) -> None:
    seconds = parse_retry_after(values)
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER


@given(st.text(max_size=500), st.integers(1, 400))
def test_redact_never_returns_jwt_and_respects_limit_when_text_is_arbitrary(text: str, limit: int) -> None:
    out = redact(f"{text}{SECRET}{text}", limit)
    assert SECRET not in out and len(out) <= limit + 3


failures = st.builds(TransportFailure, st.sampled_from(list(FailureKind)), st.text(max_size=10))
results = st.one_of(answers, failures)


@given(
    st.lists(results, min_size=1, max_size=40),
    st.booleans(),
    st.floats(min_value=0.1, max_value=120.0),
    st.lists(st.floats(min_value=0.0, max_value=0.999), min_size=1, max_size=5),
)
def test_flow_ends_by_deadline_with_token_or_our_error_when_answers_are_arbitrary(
    script: list[HttpAnswer | TransportFailure], seen: bool, deadline: float, randoms: list[float]
) -> None:
    timeouts = Timeouts(deadline=deadline)
    rolls = iter(randoms * 1000)
    flow = TokenFlow(
        endpoint="http://127.0.0.1:9",
        query=TokenQuery("https://x"),
        timeouts=timeouts,
        retry=RetryPolicy(),
        start=0.0,
        random=lambda: next(rolls),
        imds_seen=seen,
    )
    steps = flow.run()
    now, index = 0.0, 0
    try:
        step = next(steps)
        for _ in range(500):
            if isinstance(step, Sleep):
                assert step.seconds >= 0
                now += step.seconds
                assert now <= deadline + 1e-6
                step = steps.send(Received(None, now))
                continue
            assert step.connect_timeout > 0 and step.read_timeout > 0
            assert now + step.read_timeout <= deadline + 1e-6
            result = script[index % len(script)]
            index += 1
            # A failure uses the whole read timeout; an answer comes within it.
            now += (
                step.read_timeout if isinstance(result, TransportFailure) else min(0.001, step.read_timeout)
            )
            step = steps.send(Received(result, now, SENT_AT))
        raise AssertionError("the flow did not end within 500 steps")
    except StopIteration as done:
        assert done.value.access_token
    except ImdsError as err:
        assert isinstance(err, (ImdsError, CredentialUnavailableError))
        assert SECRET not in str(err) and SECRET not in repr(err)
        assert err.attempts >= 1
    assert now <= deadline + 1e-6
