"""Local cache, proactive refresh, single flight and claims, through both shells."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from azure_imds_credential import CredentialUnavailableError, ImdsError, RetryNotice
from azure_imds_credential import ImdsManagedIdentityCredential as SyncCredential
from azure_imds_credential.aio import ImdsManagedIdentityCredential as AsyncCredential
from azure_imds_credential.testing import Fault, Identity, ImdsEmulator, decode_jwt_claims
from tests.conftest import FakeClock, Shell

SCOPE = "https://storage.azure.com/.default"


@pytest.fixture
def shared_clock_emulator(clock: FakeClock) -> Iterator[ImdsEmulator]:
    """An emulator on the test's fake clock, so its token cache and expiry move with ours."""
    with ImdsEmulator(clock=clock.time) as running:
        yield running


def test_get_token_uses_cache_when_called_again(shell: Shell, emulator: ImdsEmulator) -> None:
    cred = shell.credential(endpoint=emulator.endpoint)
    first = shell.call(cred.get_token, SCOPE)
    again = shell.call(cred.get_token, SCOPE)
    info = shell.call(cred.get_token_info, SCOPE)
    bare = shell.call(cred.get_token, "https://storage.azure.com")  # same resource, other spelling
    assert first.token == again.token == info.token == bare.token
    assert len(emulator.token_requests) == 1


def test_get_token_requests_each_resource_once_when_resources_differ(
    shell: Shell, emulator: ImdsEmulator
) -> None:
    cred = shell.credential(endpoint=emulator.endpoint)
    a = shell.call(cred.get_token, "https://a/.default")
    b = shell.call(cred.get_token, "https://b/.default")
    assert a.token != b.token
    assert [r.query["resource"] for r in emulator.token_requests] == ["https://a", "https://b"]


def test_get_token_info_has_refresh_on_before_expiry(shell: Shell, emulator: ImdsEmulator) -> None:
    info = shell.call(shell.credential(endpoint=emulator.endpoint).get_token_info, SCOPE)
    assert info.refresh_on is not None and info.refresh_on < info.expires_on
    assert info.expires_on - info.refresh_on == 300  # lifetime 3600 s < 2 h: 5 min early


def test_get_token_ignores_tenant_and_cae_when_given(shell: Shell, emulator: ImdsEmulator) -> None:
    cred = shell.credential(endpoint=emulator.endpoint)
    token = shell.call(cred.get_token, SCOPE, tenant_id="other-tenant", enable_cae=True, unknown_option=1)
    assert token.token
    assert set(emulator.token_requests[0].query) == {"api-version", "resource"}


def test_get_token_sends_bypass_cache_when_claims_challenge(shell: Shell, emulator: ImdsEmulator) -> None:
    cred = shell.credential(endpoint=emulator.endpoint)
    old = shell.call(cred.get_token, SCOPE)
    fresh = shell.call(cred.get_token, SCOPE, claims='{"access_token":{"nbf":{"essential":true}}}')
    assert fresh.token != old.token
    assert emulator.token_requests[-1].query.get("bypass_cache") == "true"
    assert "claims" not in emulator.token_requests[-1].query  # IMDS takes no claims
    assert shell.call(cred.get_token, SCOPE).token == fresh.token  # the fresh one is cached
    info = shell.call(cred.get_token_info, SCOPE, options={"claims": "c"})
    assert info.token not in (old.token, fresh.token)
    assert len(emulator.token_requests) == 3


def test_get_token_refreshes_once_and_serves_cached_when_refresh_due(
    shell: Shell, clock: FakeClock, shared_clock_emulator: ImdsEmulator
) -> None:
    emulator = shared_clock_emulator
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    old = shell.call(cred.get_token, SCOPE)
    clock.advance(3310)  # past refresh_on (expiry - 300 s), token still valid
    emulator.latency = 0.3
    tokens = _concurrently(shell, cred, 16)
    assert len(emulator.token_requests) == 2  # one refresh for 16 callers
    assert old.token in tokens  # callers that arrived during the refresh got the valid token
    new = shell.call(cred.get_token, SCOPE)
    assert new.token != old.token and len(emulator.token_requests) == 2


def test_get_token_keeps_valid_token_when_proactive_refresh_fails(
    shell: Shell, clock: FakeClock, shared_clock_emulator: ImdsEmulator
) -> None:
    emulator = shared_clock_emulator
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    old = shell.call(cred.get_token, SCOPE)
    clock.advance(3310)
    emulator.always(Fault.status(500))
    assert shell.call(cred.get_token, SCOPE).token == old.token
    failed_attempts = len(emulator.token_requests)
    assert failed_attempts > 2
    clock.advance(5)  # within 30 s of the failure: no new attempt
    assert shell.call(cred.get_token, SCOPE).token == old.token
    assert len(emulator.token_requests) == failed_attempts
    clock.advance(30)
    emulator.always(None)
    assert shell.call(cred.get_token, SCOPE).token != old.token


def test_get_token_waits_for_new_token_when_cached_one_expired(
    shell: Shell, clock: FakeClock, shared_clock_emulator: ImdsEmulator
) -> None:
    emulator = shared_clock_emulator
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    old = shell.call(cred.get_token, SCOPE)
    clock.advance(4000)
    new = shell.call(cred.get_token, SCOPE)
    assert new.token != old.token and new.expires_on > clock.time()


def test_get_token_raises_when_cached_token_expired_and_imds_fails(
    shell: Shell, clock: FakeClock, shared_clock_emulator: ImdsEmulator
) -> None:
    emulator = shared_clock_emulator
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    shell.call(cred.get_token, SCOPE)
    clock.advance(4000)
    emulator.always(Fault.status(500))
    with pytest.raises(ImdsError):
        shell.call(cred.get_token, SCOPE)


def _concurrently(shell: Shell, cred: object, callers: int) -> set[str]:
    """`callers` get_token calls started together; the set of tokens they got."""
    if shell.is_async:
        assert isinstance(cred, AsyncCredential)

        async def herd() -> set[str]:
            got = await asyncio.gather(*(cred.get_token(SCOPE) for _ in range(callers)))
            return {t.token for t in got}

        result: set[str] = shell.run(herd())
        return result
    assert isinstance(cred, SyncCredential)
    barrier = threading.Barrier(callers)

    def one() -> str:
        barrier.wait(timeout=10)
        return cred.get_token(SCOPE).token

    with ThreadPoolExecutor(callers) as pool:
        return set(pool.map(lambda _: one(), range(callers)))


def test_get_token_sends_one_request_when_cold_herd(shell: Shell, emulator: ImdsEmulator) -> None:
    callers = 500 if shell.is_async else 32  # 500 asyncio tasks / 32 threads on one credential
    emulator.latency = 0.2
    cred = shell.credential(endpoint=emulator.endpoint)
    tokens = _concurrently(shell, cred, callers)
    assert len(tokens) == 1
    assert len(emulator.token_requests) == 1


def test_get_token_herd_shares_the_error_when_imds_unavailable(shell: Shell, emulator: ImdsEmulator) -> None:
    emulator.latency = 0.2
    emulator.always(
        Fault.status(400, {"error": "invalid_request", "error_description": "Identity not found"})
    )
    cred = shell.credential(endpoint=emulator.endpoint)
    with pytest.raises(ImdsError):
        _concurrently(shell, cred, 8)
    assert len(emulator.token_requests) == 1


async def test_async_get_token_cancelled_waiter_leaves_others_served(emulator: ImdsEmulator) -> None:
    emulator.latency = 0.3
    async with AsyncCredential(endpoint=emulator.endpoint) as cred:
        first = asyncio.ensure_future(cred.get_token(SCOPE))
        second = asyncio.ensure_future(cred.get_token(SCOPE))
        await asyncio.sleep(0.05)
        first.cancel()
        token = await second
        with pytest.raises(asyncio.CancelledError):
            await first
        assert token.token
        assert len(emulator.token_requests) == 1
        # A cancelled leader did not cancel the request: the token landed in the cache.
        assert (await cred.get_token(SCOPE)).token == token.token


async def test_async_get_token_completes_request_when_every_caller_cancelled(emulator: ImdsEmulator) -> None:
    emulator.latency = 0.2
    async with AsyncCredential(endpoint=emulator.endpoint) as cred:
        only = asyncio.ensure_future(cred.get_token(SCOPE))
        await asyncio.sleep(0.05)
        only.cancel()
        with pytest.raises(asyncio.CancelledError):
            await only
        token = await cred.get_token(SCOPE)
        assert token.token and len(emulator.token_requests) == 1


@pytest.mark.parametrize("selector", ["client_id", "object_id", "msi_res_id"])
def test_get_token_asks_for_user_assigned_identity_when_selector_given(shell: Shell, selector: str) -> None:
    user = Identity.user_assigned("app-identity")
    with ImdsEmulator(identities=[Identity.system(), user]) as emulator:
        cred = shell.credential(endpoint=emulator.endpoint, **{selector: getattr(user, selector)})
        claims = decode_jwt_claims(shell.call(cred.get_token, SCOPE).token)
        assert claims["oid"] == user.object_id and claims["appid"] == user.client_id
        assert emulator.token_requests[0].query[selector] == getattr(user, selector)


def test_get_token_is_unavailable_when_identity_not_assigned(shell: Shell, emulator: ImdsEmulator) -> None:
    cred = shell.credential(endpoint=emulator.endpoint, client_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(CredentialUnavailableError) as caught:
        shell.call(cred.get_token, SCOPE)
    assert caught.value.status == 400 and caught.value.error_code == "invalid_request"
    assert "client_id=00000000-0000-0000-0000-000000000000" in caught.value.message


def test_on_retry_reports_each_wait_when_imds_updating(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    notices: list[RetryNotice] = []
    emulator.push(Fault.status(410), Fault.status(429, headers={"Retry-After": "3"}))
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock, on_retry=notices.append)
    assert shell.call(cred.get_token, SCOPE).token
    assert [(n.attempt, n.seconds) for n in notices] == [(1, clock.sleeps[0]), (2, 3.0)]
    assert notices[0].reason.startswith("HTTP 410") and notices[1].reason.startswith("HTTP 429")
