"""What each kind of IMDS answer becomes, from one table, through the sync and async shells.

Every case runs through both shells (the `shell` fixture), and once more through both in one
test that compares the outcomes field by field: the two shells drive the same core flow, so
they must agree on the outcome type, status, error code, attempts and sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from azure_imds_credential import CredentialUnavailableError, ImdsError, _presence
from azure_imds_credential.testing import Fault, ImdsEmulator
from tests.conftest import FakeClock, Shell
from tests.helpers.transports import AsyncCountingTransport, CountingTransport

SCOPE = "https://storage.azure.com/.default"
MAX_RESPONSE_BYTES = 64 * 1024  # the library's cap on an answer's body
DEFAULT_DEADLINE = 80.0

TOKEN = "token"
UNAVAILABLE = "unavailable"
ERROR = "error"  # ImdsError that is not CredentialUnavailableError


@dataclass(frozen=True)
class Outcome:
    """What a call came to, in terms both shells must agree on (tokens themselves differ)."""

    kind: str
    status: int | None = None
    error_code: str | None = None
    attempts: int | None = None
    token_requests: int = 0
    sleeps: tuple[float, ...] = ()


@dataclass
class Run:
    outcome: Outcome
    token: Any = None
    error: ClientAuthenticationError | None = None
    bytes_read: int | None = None


@dataclass(frozen=True)
class Case:
    id: str
    arrange: Callable[[ImdsEmulator], None]
    kind: str
    status: int | None = None
    error_code: str | None = None
    token_requests: int | None = None
    # Extra checks on the run, the fake clock's sleeps and the emulator.
    check: Callable[[Run, FakeClock, ImdsEmulator], None] | None = None
    # Read through a transport that counts the body bytes the client read.
    counting: bool = False
    marks: tuple[Any, ...] = field(default=())
    # A known library bug makes the shells disagree on this case (see the reason).


def _push(*faults: Fault) -> Callable[[ImdsEmulator], None]:
    return lambda emulator: emulator.push(*faults)


def _always(fault: Fault) -> Callable[[ImdsEmulator], None]:
    return lambda emulator: emulator.always(fault)


def _redirect_to_self(emulator: ImdsEmulator) -> None:
    # Following it would fetch a real token: the outcome shows it was not followed.
    emulator.push(
        Fault.redirect(
            f"{emulator.endpoint}/metadata/identity/oauth2/token"
            "?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com"
        )
    )


def _no_sleeps(run: Run, clock: FakeClock, emulator: ImdsEmulator) -> None:
    assert clock.sleeps == []


def _slept_retry_after(run: Run, clock: FakeClock, emulator: ImdsEmulator) -> None:
    assert clock.sleeps == [7.0]


def _slept_at_least_1s_each(run: Run, clock: FakeClock, emulator: ImdsEmulator) -> None:
    assert len(clock.sleeps) == 2
    assert all(seconds >= 1.0 for seconds in clock.sleeps), clock.sleeps


def _gave_up_after_6(run: Run, clock: FakeClock, emulator: ImdsEmulator) -> None:
    assert run.error is not None
    assert getattr(run.error, "attempts", None) == 6
    assert len(clock.sleeps) == 5
    assert all(seconds >= 1.0 for seconds in clock.sleeps), clock.sleeps


def _outlasted_410(run: Run, clock: FakeClock, emulator: ImdsEmulator) -> None:
    # IMDS is back within 70 s after a 410: retries must span that, within the deadline.
    assert 70.0 <= sum(clock.sleeps) <= DEFAULT_DEADLINE, clock.sleeps


# aiohttp resends a GET at once when a reused connection is reset; the async shell's
# transport turns that off, so both shells send exactly the attempts they report.


def _retried_once(run: Run, clock: FakeClock, emulator: ImdsEmulator) -> None:
    assert len(clock.sleeps) == 1


def _stopped_reading(run: Run, clock: FakeClock, emulator: ImdsEmulator) -> None:
    assert run.bytes_read is not None
    # It read past the cap (that is how it knows the answer is too large), then stopped:
    # nowhere near the 10 MB the server offered.
    assert MAX_RESPONSE_BYTES < run.bytes_read <= 1024 * 1024, run.bytes_read


IDENTITY_NOT_FOUND = {"error": "invalid_request", "error_description": "Identity not found"}

CASES = [
    Case("healthy", lambda emulator: None, TOKEN, token_requests=1, check=_no_sleeps),
    Case(
        "400_identity_not_found",
        _push(Fault.status(400, IDENTITY_NOT_FOUND)),
        UNAVAILABLE,
        status=400,
        error_code="invalid_request",
        token_requests=1,
        check=_no_sleeps,
    ),
    Case("docker_403", _push(Fault.docker_403()), UNAVAILABLE, status=403, token_requests=1),
    Case(
        "imds_403",
        # Default Server: IMDS/... header and IMDS's JSON error shape: IMDS itself said no.
        _push(Fault.status(403)),
        ERROR,
        status=403,
        error_code="forbidden",
        token_requests=1,
        check=_no_sleeps,
    ),
    Case("non_json_200", _push(Fault.non_json_200()), UNAVAILABLE, status=200, token_requests=1),
    Case("foreign_json_200", _push(Fault.foreign_json_200()), UNAVAILABLE, status=200, token_requests=1),
    Case("html_200", _push(Fault.html_200()), UNAVAILABLE, status=200, token_requests=1),
    Case("redirect", _redirect_to_self, UNAVAILABLE, status=302, token_requests=1, check=_no_sleeps),
    Case("410_then_healthy", _push(Fault.status(410)), TOKEN, token_requests=2, check=_retried_once),
    Case("404_then_healthy", _push(Fault.status(404)), TOKEN, token_requests=2, check=_retried_once),
    Case(
        "429_retry_after_7_then_healthy",
        _push(Fault.retry_after(429, 7)),
        TOKEN,
        token_requests=2,
        check=_slept_retry_after,
    ),
    Case(
        "500_twice_then_healthy",
        _push(Fault.status(500), Fault.status(500)),
        TOKEN,
        token_requests=3,
        check=_slept_at_least_1s_each,
    ),
    Case(
        "500_forever",
        _always(Fault.status(500)),
        ERROR,
        status=500,
        error_code="internal_server_error",
        token_requests=6,
        check=_gave_up_after_6,
    ),
    Case(
        "410_forever", _always(Fault.status(410)), ERROR, status=410, error_code="gone", check=_outlasted_410
    ),
    # A reset before IMDS was ever seen is still TRANSIENT (IMDS updating or overloaded).
    Case(
        "reset_then_healthy",
        _push(Fault.reset()),
        TOKEN,
        token_requests=2,
    ),
    Case("partial_body_then_healthy", _push(Fault.partial_body()), TOKEN, token_requests=2),
    Case(
        "huge_body_10mb",
        _push(Fault.huge_body(10 * 1024 * 1024)),
        UNAVAILABLE,
        status=200,
        token_requests=1,
        check=_stopped_reading,
        counting=True,
    ),
]


def _run(shell: Shell, emulator: ImdsEmulator, clock: FakeClock, case: Case) -> Run:
    case.arrange(emulator)
    transport: Any = None
    if case.counting:
        transport = AsyncCountingTransport() if shell.is_async else CountingTransport()
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock, transport=transport)
    try:
        token = shell.call(cred.get_token, SCOPE)
        run = Run(
            Outcome(TOKEN, token_requests=len(emulator.token_requests), sleeps=tuple(clock.sleeps)), token
        )
    except ClientAuthenticationError as err:
        assert isinstance(err, ImdsError), f"{type(err)} is not an ImdsError"
        kind = UNAVAILABLE if isinstance(err, CredentialUnavailableError) else ERROR
        outcome = Outcome(
            kind,
            status=err.status,
            error_code=err.error_code,
            attempts=err.attempts,
            token_requests=len(emulator.token_requests),
            sleeps=tuple(clock.sleeps),
        )
        run = Run(outcome, error=err)
    finally:
        if transport is not None:
            shell.run(transport.close())
    if transport is not None:
        run.bytes_read = transport.bytes_read
    return run


def _check(run: Run, case: Case, clock: FakeClock, emulator: ImdsEmulator) -> None:
    outcome = run.outcome
    assert outcome.kind == case.kind, run.error
    if case.token_requests is not None:
        assert outcome.token_requests == case.token_requests
    if case.kind == TOKEN:
        assert run.token is not None and run.token.token in emulator.issued_tokens()
    else:
        err = run.error
        assert isinstance(err, ClientAuthenticationError)
        assert outcome.status == case.status
        assert outcome.error_code == case.error_code
        # Every answer the emulator counted is an attempt the error reports.
        assert outcome.attempts == outcome.token_requests
        assert emulator.endpoint in str(err)
        assert emulator.endpoint in err.message
    if case.check is not None:
        case.check(run, clock, emulator)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_credential_outcome_matches_table_when_imds_answers_each_way(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock, case: Case
) -> None:
    run = _run(shell, emulator, clock, case)
    _check(run, case, clock, emulator)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_shells_outcomes_identical_when_imds_answers_each_way(case: Case) -> None:
    """Sync and async, side by side: same outcome type, status, code, attempts and sleeps."""
    outcomes: dict[str, Outcome] = {}
    for name in ("sync", "async"):
        _presence.forget()
        runner = Shell(name)
        try:
            with ImdsEmulator() as emulator:
                clock = FakeClock()
                run = _run(runner, emulator, clock, case)
                _check(run, case, clock, emulator)
                outcomes[name] = run.outcome
        finally:
            runner.close()
            _presence.forget()
    assert outcomes["sync"] == outcomes["async"]


def test_errors_are_client_authentication_errors_when_unavailable_or_failing(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    emulator.push(Fault.status(400, IDENTITY_NOT_FOUND))
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    with pytest.raises(ClientAuthenticationError) as unavailable:
        shell.call(cred.get_token, SCOPE)
    assert isinstance(unavailable.value, CredentialUnavailableError)
    assert emulator.endpoint in str(unavailable.value)

    emulator.always(Fault.status(500))
    with pytest.raises(ClientAuthenticationError) as failing:
        shell.call(cred.get_token, SCOPE)
    assert isinstance(failing.value, ImdsError)
    assert not isinstance(failing.value, CredentialUnavailableError)
    assert emulator.endpoint in str(failing.value)


def test_credential_reports_every_request_as_attempt_when_connection_reset_forever(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    """A reset is TRANSIENT: retried on the library's schedule, each request one attempt."""
    emulator.always(Fault.reset())
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    with pytest.raises(ImdsError) as caught:
        shell.call(cred.get_token, SCOPE)
    assert not isinstance(caught.value, CredentialUnavailableError)
    assert caught.value.attempts == 6
    assert len(clock.sleeps) == 5
    # Each attempt is one request on the wire: no hidden resend without backoff.
    assert len(emulator.token_requests) == caught.value.attempts
