"""The fault matrix: every fault the emulator scripts, on the first call and on a proactive
refresh of a cached token, through both shells. docs/reliability.md lists the same table."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from azure_imds_credential import CredentialUnavailableError, ImdsError
from azure_imds_credential.testing import Fault, ImdsEmulator
from tests.conftest import FakeClock, Shell

SCOPE = "https://storage.azure.com/.default"
TIMEOUT = 3.0  # the configured deadline for these calls
# Small waits keep the real-time faults (hang, latency) short; sleeps are on the fake clock.
OPTIONS = {"first_answer_timeout": 0.15, "attempt_timeout": 0.4, "timeout": TIMEOUT}

TOKEN, UNAVAILABLE, FAILED = "token", "unavailable", "failed"


@dataclass(frozen=True)
class Row:
    name: str
    fault: Fault
    first_call: str  # outcome of a first call when IMDS answers every request this way


MATRIX = [
    Row(
        "400 identity not found",
        Fault.status(400, {"error": "invalid_request", "error_description": "Identity not found"}),
        UNAVAILABLE,
    ),
    Row("403 Docker Desktop", Fault.docker_403(), UNAVAILABLE),
    Row("403 from IMDS", Fault.status(403), FAILED),
    Row("404 updating", Fault.status(404), FAILED),
    Row("410 updating", Fault.status(410), FAILED),
    Row("429 without Retry-After", Fault.status(429), FAILED),
    Row("429 with Retry-After", Fault.retry_after(429, 1), FAILED),
    Row("500", Fault.status(500), FAILED),
    Row("503", Fault.status(503), FAILED),
    Row("slow token (latency)", Fault.delay(0.3), TOKEN),
    Row("accept and never answer", Fault.hang(), FAILED),
    Row("connection reset", Fault.reset(), FAILED),
    Row("partial body", Fault.partial_body(), FAILED),
    Row("slow body", Fault.slow_body(0.02, 3), TOKEN),
    Row("non-JSON 200", Fault.non_json_200(), UNAVAILABLE),
    Row("foreign JSON 200", Fault.foreign_json_200(), UNAVAILABLE),
    Row("another cloud's HTML", Fault.html_200(), UNAVAILABLE),
    Row("redirect", Fault.redirect("http://127.0.0.1:9/elsewhere"), UNAVAILABLE),
    Row("huge body", Fault.huge_body(5_000_000), UNAVAILABLE),
    Row("unusable token", Fault.token(expires_in="soon", expires_on=None), UNAVAILABLE),
]


@pytest.fixture
def clocked_emulator(clock: FakeClock) -> Iterator[ImdsEmulator]:
    with ImdsEmulator(clock=clock.time) as emulator:
        yield emulator


@pytest.mark.parametrize("row", MATRIX, ids=[r.name for r in MATRIX])
def test_first_call_outcome_matches_matrix_when_imds_always_answers_with_fault(
    shell: Shell, clock: FakeClock, clocked_emulator: ImdsEmulator, row: Row
) -> None:
    clocked_emulator.always(row.fault)
    cred = shell.credential(endpoint=clocked_emulator.endpoint, clock=clock, **OPTIONS)
    if row.first_call == TOKEN:
        assert shell.call(cred.get_token, SCOPE).token in clocked_emulator.issued_tokens()
        return
    with pytest.raises(ImdsError) as caught:
        shell.call(cred.get_token, SCOPE)
    err = caught.value
    assert isinstance(err, CredentialUnavailableError) == (row.first_call == UNAVAILABLE)
    assert err.elapsed <= TIMEOUT  # returned by the configured deadline
    assert err.attempts >= 1 and clocked_emulator.endpoint in err.message


@pytest.mark.parametrize("row", MATRIX, ids=[r.name for r in MATRIX])
def test_refresh_keeps_cached_token_when_imds_faults_during_proactive_refresh(
    shell: Shell, clock: FakeClock, clocked_emulator: ImdsEmulator, row: Row
) -> None:
    cred = shell.credential(endpoint=clocked_emulator.endpoint, clock=clock, **OPTIONS)
    cached = shell.call(cred.get_token, SCOPE)
    clock.advance(3310)  # past refresh_on, still valid
    clocked_emulator.always(row.fault)
    got = shell.call(cred.get_token, SCOPE)
    assert len(clocked_emulator.token_requests) >= 2  # a refresh was attempted
    if row.first_call == TOKEN:
        assert got.token != cached.token  # the refresh succeeded despite the fault
    else:
        assert got.token == cached.token  # a failed refresh keeps serving the valid token
