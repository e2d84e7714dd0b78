"""The acquisition flow as a table: scripted answers in, steps and outcome out. No I/O."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from azure_imds_credential import CredentialUnavailableError, ImdsError, RetryPolicy, TokenQuery
from azure_imds_credential._core.flow import Timeouts, TokenFlow
from azure_imds_credential._core.steps import FailureKind, HttpAnswer, Received, Send, Sleep, TransportFailure
from azure_imds_credential._core.token import ImdsToken

IMDS = {"server": "IMDS/150.870.65.1325"}
TOKEN = HttpAnswer(200, IMDS, json.dumps({"access_token": "t", "expires_in": "3599"}).encode())


def status(code: int, **headers: str) -> HttpAnswer:
    return HttpAnswer(
        code, {**IMDS, **headers}, json.dumps({"error": "e", "error_description": "d"}).encode()
    )


def fail(kind: FailureKind) -> TransportFailure:
    return TransportFailure(kind, "scripted")


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()

# A script entry: the result for the next Send, and how long that Send took.
Result = HttpAnswer | TransportFailure
Script = Callable[[Send, float], Result]


@dataclass
class Run:
    sends: list[Send] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    send_times: list[float] = field(default_factory=list)
    now: float = 0.0
    token: ImdsToken | None = None
    error: ImdsError | None = None
    flow: TokenFlow | None = None


def drive(
    answer: Script | Sequence[Result],
    *,
    seen: bool = False,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    retry: RetryPolicy = DEFAULT_RETRY,
    took: float = 0.01,
) -> Run:
    """Run a flow to its end; a Send whose result is a READ_TIMEOUT takes its read_timeout."""
    queue = list(answer) if not callable(answer) else None
    run = Run()
    flow = TokenFlow(
        endpoint="http://127.0.0.1:9",
        query=TokenQuery("https://x"),
        timeouts=timeouts,
        retry=retry,
        start=0.0,
        random=lambda: 0.5,
        imds_seen=seen,
    )
    run.flow = flow
    steps = flow.run()
    try:
        step = next(steps)
        for _ in range(10_000):
            if isinstance(step, Sleep):
                run.sleeps.append(step.seconds)
                run.now += step.seconds
                step = steps.send(Received(None, run.now))
                continue
            run.sends.append(step)
            run.send_times.append(run.now)
            result = queue.pop(0) if queue is not None else answer(step, run.now)  # type: ignore[operator]
            if isinstance(result, TransportFailure) and result.kind is FailureKind.READ_TIMEOUT:
                run.now += step.read_timeout
            elif isinstance(result, TransportFailure) and result.kind is FailureKind.CONNECT_TIMEOUT:
                run.now += step.connect_timeout
            else:
                run.now += took
            step = steps.send(Received(result, run.now, sent_at=1_700_000_000.0))
        raise AssertionError("flow did not end")
    except StopIteration as done:
        run.token = done.value
    except ImdsError as exc:
        run.error = exc
    return run


def test_flow_returns_token_after_one_request_when_imds_healthy() -> None:
    run = drive([TOKEN])
    assert run.token is not None and run.token.access_token == "t"
    assert len(run.sends) == 1 and run.sends[0].headers == {"Metadata": "true"}
    assert run.flow is not None and run.flow.imds_seen


@pytest.mark.parametrize("kind", [FailureKind.UNREACHABLE, FailureKind.CONNECT_TIMEOUT])
def test_flow_is_unavailable_at_once_when_nothing_answers_off_azure(kind: FailureKind) -> None:
    run = drive([fail(kind)])
    assert isinstance(run.error, CredentialUnavailableError)
    assert len(run.sends) == 1 and run.sleeps == []
    assert run.sends[0].connect_timeout == 1.0  # dropped SYNs are reported within ~1 s


@pytest.mark.parametrize("kind", [FailureKind.UNREACHABLE, FailureKind.CONNECT_TIMEOUT, FailureKind.RESET])
def test_flow_retries_refusals_when_imds_was_seen_before(kind: FailureKind) -> None:
    run = drive([fail(kind), fail(kind), TOKEN], seen=True)
    assert run.token is not None and len(run.sends) == 3 and len(run.sleeps) == 2


def test_flow_probes_and_waits_when_first_answer_is_late_but_probe_answers() -> None:
    run = drive([fail(FailureKind.READ_TIMEOUT), status(400), TOKEN])
    assert run.token is not None
    first, probe, retry = run.sends
    assert first.read_timeout == 2.0 and first.headers == {"Metadata": "true"}
    assert probe.probe and probe.headers == {} and probe.read_timeout == 1.0
    assert retry.read_timeout == 30.0  # a slow IMDS gets the full attempt time
    assert run.sleeps == []


def test_flow_is_unavailable_within_seconds_when_server_never_answers() -> None:
    run = drive([fail(FailureKind.READ_TIMEOUT), fail(FailureKind.READ_TIMEOUT)])
    assert isinstance(run.error, CredentialUnavailableError)
    assert "probe" in run.error.message
    assert run.now <= 3.0 + 1e-9  # 2 s first-answer wait + 1 s probe


def test_flow_waits_full_attempt_time_when_imds_already_seen() -> None:
    run = drive([TOKEN], seen=True)
    assert run.sends[0].read_timeout == 30.0


def test_flow_recovers_within_5_s_when_410_ends_after_16_s() -> None:
    def imds(step: Send, now: float) -> Result:
        return status(410) if now < 16.0 else TOKEN

    run = drive(imds)
    assert run.token is not None
    assert run.send_times[-1] - 16.0 < 5.0


def test_flow_keeps_trying_410_for_70_s_then_fails_by_deadline() -> None:
    run = drive(lambda step, now: status(410))
    assert isinstance(run.error, ImdsError) and not isinstance(run.error, CredentialUnavailableError)
    assert run.send_times[-1] >= 70.0
    assert run.now <= 80.0
    assert run.error.status == 410 and run.error.attempts == len(run.sends)


def test_flow_honours_retry_after_when_throttled() -> None:
    run = drive([status(429, **{"retry-after": "7"}), TOKEN])
    assert run.token is not None and run.sleeps == [7.0]


def test_flow_gives_up_when_retry_after_passes_deadline() -> None:
    run = drive([status(429, **{"retry-after": "50"})], timeouts=Timeouts(deadline=20.0))
    assert isinstance(run.error, ImdsError) and "deadline" in run.error.message
    assert run.sleeps == []


def test_flow_gives_up_after_five_retries_when_500_persists() -> None:
    run = drive(lambda step, now: status(500))
    assert isinstance(run.error, ImdsError) and not isinstance(run.error, CredentialUnavailableError)
    assert len(run.sends) == 6 and run.error.attempts == 6
    assert all(s >= 1.0 for s in run.sleeps)


@pytest.mark.parametrize("deadline", [0.5, 3.0, 7.5, 12.0, 33.0])
@pytest.mark.parametrize("kind", [FailureKind.READ_TIMEOUT, FailureKind.RESET])
def test_flow_never_overshoots_deadline_when_imds_keeps_failing(deadline: float, kind: FailureKind) -> None:
    run = drive(lambda step, now: fail(kind), seen=True, timeouts=Timeouts(deadline=deadline))
    assert isinstance(run.error, ImdsError)
    assert run.now <= deadline + 1e-9
    for sent_at, send in zip(run.send_times, run.sends, strict=True):
        assert sent_at + send.read_timeout <= deadline + 1e-9


def test_flow_is_unavailable_without_retry_when_identity_not_found() -> None:
    run = drive([status(400)])
    assert isinstance(run.error, CredentialUnavailableError)
    assert run.error.status == 400 and run.error.error_code == "e" and len(run.sends) == 1
    assert run.flow is not None and run.flow.imds_seen  # IMDS did answer


def test_flow_fails_without_retry_when_imds_refuses_with_other_4xx() -> None:
    run = drive([status(401)])
    assert type(run.error) is ImdsError and len(run.sends) == 1


def test_flow_chains_transport_exception_when_failing() -> None:
    cause = ConnectionRefusedError("refused")
    run = drive([TransportFailure(FailureKind.UNREACHABLE, "x", cause)])
    assert run.error is not None and run.error.__cause__ is cause


def test_flow_gives_up_instead_of_probing_when_deadline_leaves_no_time() -> None:
    # Found by the fuzzer: a first-answer timeout ending just before the deadline used to be
    # followed by a probe with microseconds to run, overshooting the deadline.
    run = drive([fail(FailureKind.READ_TIMEOUT)], timeouts=Timeouts(deadline=2.00001))
    assert isinstance(run.error, ImdsError) and "deadline" in run.error.message
    assert len(run.sends) == 1 and run.now <= 2.00001


def test_flow_does_not_busy_loop_when_updating_with_retry_after_zero() -> None:
    # The fuzzer's case: 404 with "Retry-After: 0" until a 1 s deadline.
    run = drive(lambda step, now: status(404, **{"retry-after": "0"}), timeouts=Timeouts(deadline=1.0))
    assert isinstance(run.error, ImdsError)
    assert len(run.sends) == 1 and run.sleeps == []  # the next attempt (1 s away) would pass it
