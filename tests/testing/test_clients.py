"""Clients we did not write get tokens from the emulator unchanged (via the env var alone), and
every fault kind, written in the `--fault` syntax, reaches our credential as IMDS's would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msal  # type: ignore[import-untyped]
import pytest
import requests
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from azure_imds_credential import CredentialUnavailableError, ImdsError, ImdsManagedIdentityCredential
from azure_imds_credential.testing import Identity, ImdsEmulator, decode_jwt_claims, parse_fault
from tests.conftest import FakeClock
from tests.testing.helpers import RESOURCE, SCOPE

APP = Identity.user_assigned("app")

# -- clients we did not write ------------------------------------------------------------------


def test_azure_identity_sync_gets_emulator_token_when_env_points_at_it(imds_emulator: ImdsEmulator) -> None:
    with ManagedIdentityCredential() as credential:
        token = credential.get_token(SCOPE)
    assert token.token in imds_emulator.issued_tokens()
    assert decode_jwt_claims(token.token)["aud"] == RESOURCE
    assert imds_emulator.token_requests[-1].status == 200


@pytest.mark.imds(identities=[Identity.system(), APP])
def test_azure_identity_sync_gets_user_assigned_token_when_client_id_given(
    imds_emulator: ImdsEmulator,
) -> None:
    with ManagedIdentityCredential(client_id=APP.client_id) as credential:
        token = credential.get_token(SCOPE)
    assert decode_jwt_claims(token.token)["oid"] == APP.object_id


async def test_azure_identity_aio_gets_emulator_token_when_env_points_at_it(
    imds_emulator: ImdsEmulator,
) -> None:
    async with AsyncManagedIdentityCredential() as credential:
        token = await credential.get_token(SCOPE)
    assert token.token in imds_emulator.issued_tokens()
    assert imds_emulator.token_requests[-1].query["resource"] == RESOURCE


def test_msal_managed_identity_client_gets_emulator_token_when_env_points_at_it(
    imds_emulator: ImdsEmulator,
) -> None:
    with requests.Session() as session:
        client = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(), http_client=session)
        result = client.acquire_token_for_client(resource=RESOURCE)
    assert result.get("access_token") in imds_emulator.issued_tokens(), result.get("error")
    assert result["token_type"] == "Bearer"


# -- every fault kind, through our credential ------------------------------------------------------

TOKEN, UNAVAILABLE, ERROR = "token", "unavailable", "error"


@dataclass(frozen=True)
class Case:
    faults: tuple[str, ...]
    outcome: str
    statuses: tuple[int | None, ...] | None = None  # what the token requests were answered
    check: Callable[[FakeClock], bool] | None = None


CASES = {
    "400": Case(("400",), UNAVAILABLE, (400,)),
    "docker403": Case(("docker403",), UNAVAILABLE, (403,)),
    "404_once": Case(("404:times=1",), TOKEN, (404, 200)),
    # IMDS updating: 410 for 16 s (emulator clock = the credential's fake clock).
    "410_for_16s": Case(("410:for=16s",), TOKEN, None, lambda clock: sum(clock.sleeps) >= 16),
    "429_retry_after": Case(
        ("429:retry-after=2:times=3",), TOKEN, (429, 429, 429, 200), lambda clock: clock.sleeps == [2, 2, 2]
    ),
    "429_bare": Case(("429:times=1",), TOKEN, (429, 200)),
    "500_twice": Case(("500:times=2",), TOKEN, (500, 500, 200)),
    "503_forever": Case(("503",), ERROR, (503,) * 6),
    "reset_once": Case(("reset:times=1",), TOKEN, (None, 200)),
    "partial_once": Case(("partial:times=1",), TOKEN, (200, 200)),
    "slow_body": Case(("slow=10ms:times=1",), TOKEN, (200,)),
    "mint_delay": Case(("delay=10ms:times=1",), TOKEN, (200,)),
    "hang_once": Case(("hang:times=1",), TOKEN, (None, 200)),
    "non_json_200": Case(("non-json",), UNAVAILABLE, (200,)),
    "html_200": Case(("html",), UNAVAILABLE, (200,)),
    "foreign_json_200": Case(("foreign-json",), UNAVAILABLE, (200,)),
    "huge_200": Case(("huge=100000",), UNAVAILABLE, (200,)),
    "ok_then_500": Case(("ok:times=1", "500"), TOKEN, (200,)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_fault_reaches_credential_as_expected_when_scripted(case: Case, clock: FakeClock) -> None:
    with ImdsEmulator(clock=clock.time) as imds:
        imds.script(*[parse_fault(spec) for spec in case.faults])
        # Short per-attempt timeouts so that "hang" costs a fraction of a second: the
        # header-less probe is answered at once (as real IMDS does), so a hung token request
        # is treated as IMDS being slow and retried.
        credential = ImdsManagedIdentityCredential(
            endpoint=imds.endpoint, clock=clock, first_answer_timeout=0.1, attempt_timeout=0.2
        )
        with credential:
            outcome: str
            try:
                token = credential.get_token(SCOPE)
                outcome = TOKEN
                assert token.token == imds.issued_tokens()[-1]
            except CredentialUnavailableError:
                outcome = UNAVAILABLE
            except ImdsError:
                outcome = ERROR
        statuses = tuple(record.status for record in imds.token_requests)
    assert outcome == case.outcome, statuses
    if case.statuses is not None:
        assert statuses == case.statuses
    else:
        assert statuses[-1] == 200 and set(statuses[:-1]) == {410}
    if case.check is not None:
        assert case.check(clock), clock.sleeps
