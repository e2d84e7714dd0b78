"""azure-core's BearerTokenCredentialPolicy in a real pipeline (PipelineClient, real HTTPS
transport) with our credential: `get_token_info`, proactive refresh, claims challenges.

The resource is a loopback HTTPS server (fakes.LoopbackHttps) that records every
Authorization header and plays scripted answers; tokens come from the IMDS emulator.

How the policy decides to refresh (azure-core 1.41, `_should_refresh_token`): it keeps the
token it got and asks the credential again when `time.time() >= min(refresh_on + jitter,
expires_on)`, with jitter a random 0-60 s drawn per token (or, without `refresh_on`, 300 s
before expiry). It reads `time.time()` itself, so the refresh test hands the policy module
the same FakeClock as the credential and the emulator (one attribute, `time`, of that
module, scoped by monkeypatch), and moves that clock past `refresh_on + 60`: deterministic
whatever the jitter, with no sleeping.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator

import azure.core.pipeline.policies._authentication as policy_module
import pytest
from azure.core import AsyncPipelineClient, PipelineClient
from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy, BearerTokenCredentialPolicy
from azure.core.pipeline.transport import AioHttpTransport, RequestsTransport
from azure.core.rest import AsyncHttpResponse, HttpRequest, HttpResponse

from azure_imds_credential import ImdsManagedIdentityCredential
from azure_imds_credential.aio import ImdsManagedIdentityCredential as AsyncImdsManagedIdentityCredential
from azure_imds_credential.testing import ImdsEmulator, decode_jwt_claims
from tests.conftest import FakeClock
from tests.e2e.azurite import Tls
from tests.e2e.fakes import (
    STORAGE_SCOPE,
    AsyncSpyCredential,
    LoopbackHttps,
    Reply,
    Scripted,
    SpyCredential,
    claims_challenge,
)

LIFETIME = 3600  # < 2 h: the credential's refresh_on is 5 min before expiry, issue + 3300 s
REFRESH_AFTER = LIFETIME - 300
JITTER_MAX = 60  # azure-core's MAX_REFRESH_JITTER_SECONDS
CLAIMS = {"access_token": {"nbf": {"essential": True, "value": "1726258122"}}}


@pytest.fixture
def timed_emulator(clock: FakeClock) -> Iterator[ImdsEmulator]:
    """An emulator minting 1 h tokens on the test's FakeClock."""
    with ImdsEmulator(lifetime=LIFETIME, clock=clock.time) as running:
        yield running


@pytest.fixture
def policy_clock(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The policy reads `time.time()` of its own module: give it the FakeClock too."""
    monkeypatch.setattr(policy_module, "time", types.SimpleNamespace(time=clock.time))
    return clock


def _pipeline(url: str, credential: object, ca_file: str) -> PipelineClient[HttpRequest, HttpResponse]:
    return PipelineClient(
        url,
        policies=[BearerTokenCredentialPolicy(credential, STORAGE_SCOPE)],  # type: ignore[arg-type]
        transport=RequestsTransport(connection_verify=ca_file),
    )


def _async_pipeline(
    url: str, credential: object, ca_file: str
) -> AsyncPipelineClient[HttpRequest, AsyncHttpResponse]:
    return AsyncPipelineClient(
        url,
        policies=[AsyncBearerTokenCredentialPolicy(credential, STORAGE_SCOPE)],  # type: ignore[arg-type]
        transport=AioHttpTransport(connection_verify=ca_file),
    )


def _get(client: PipelineClient[HttpRequest, HttpResponse], url: str) -> int:
    response = client.send_request(HttpRequest("GET", f"{url}/resource"))
    return response.status_code


async def _aget(client: AsyncPipelineClient[HttpRequest, AsyncHttpResponse], url: str) -> int:
    response = await client.send_request(HttpRequest("GET", f"{url}/resource"))
    return response.status_code


def _assert_refreshed(
    server: LoopbackHttps, emulator: ImdsEmulator, calls: list[tuple[str, str | None]]
) -> None:
    first, second, third = (seen.token for seen in server.seen)
    issued = emulator.issued_tokens()
    assert first == second == issued[0]  # the policy kept the token until refresh_on
    assert third == issued[1] != first  # then the credential fetched a new one from IMDS
    assert calls == [("get_token_info", None), ("get_token_info", None)]
    assert [r.query.get("bypass_cache") for r in emulator.token_requests] == [None, None]


def test_policy_refreshes_token_when_refresh_on_passes(
    tls: Tls, ca_file: str, policy_clock: FakeClock, timed_emulator: ImdsEmulator
) -> None:
    spy = SpyCredential(ImdsManagedIdentityCredential(endpoint=timed_emulator.endpoint, clock=policy_clock))
    with LoopbackHttps(tls, Scripted()) as server, spy, _pipeline(server.url, spy, ca_file) as client:
        assert _get(client, server.url) == 200
        policy_clock.advance(REFRESH_AFTER - 300)  # well before refresh_on: no credential call
        assert _get(client, server.url) == 200
        policy_clock.advance(300 + JITTER_MAX + 1)  # past refresh_on + any jitter, before expiry
        assert _get(client, server.url) == 200
        _assert_refreshed(server, timed_emulator, spy.calls)


async def test_async_policy_refreshes_token_when_refresh_on_passes(
    tls: Tls, ca_file: str, policy_clock: FakeClock, timed_emulator: ImdsEmulator
) -> None:
    spy = AsyncSpyCredential(
        AsyncImdsManagedIdentityCredential(endpoint=timed_emulator.endpoint, clock=policy_clock)
    )
    with LoopbackHttps(tls, Scripted()) as server:
        async with spy, _async_pipeline(server.url, spy, ca_file) as client:
            assert await _aget(client, server.url) == 200
            policy_clock.advance(REFRESH_AFTER - 300)
            assert await _aget(client, server.url) == 200
            policy_clock.advance(300 + JITTER_MAX + 1)
            assert await _aget(client, server.url) == 200
        _assert_refreshed(server, timed_emulator, spy.calls)


def _challenge_replies() -> Scripted:
    return Scripted(Reply(401, {"WWW-Authenticate": claims_challenge(CLAIMS)}), Reply(200, body=b"{}"))


def _assert_fresh_token_after_challenge(
    server: LoopbackHttps, emulator: ImdsEmulator, calls: list[tuple[str, str | None]]
) -> None:
    first, retried, later = (seen.token for seen in server.seen)
    assert first is not None and retried is not None
    assert retried != first and later == retried  # the retry carried a new token, kept after
    # The challenge's claims reached the credential, which asked IMDS to skip its own cache.
    assert calls == [("get_token_info", None), ("get_token_info", json.dumps(CLAIMS))]
    assert [r.query.get("bypass_cache") for r in emulator.token_requests] == [None, "true"]
    assert emulator.issued_tokens() == [first, retried]
    assert decode_jwt_claims(retried)["aud"] == "https://storage.azure.com"


def test_policy_gets_fresh_token_with_bypass_cache_when_claims_challenged(
    tls: Tls, ca_file: str, emulator: ImdsEmulator
) -> None:
    spy = SpyCredential(ImdsManagedIdentityCredential(endpoint=emulator.endpoint))
    with (
        LoopbackHttps(tls, _challenge_replies()) as server,
        spy,
        _pipeline(server.url, spy, ca_file) as client,
    ):
        assert _get(client, server.url) == 200  # 401 challenge, then 200 on the retry
        assert _get(client, server.url) == 200
        _assert_fresh_token_after_challenge(server, emulator, spy.calls)


async def test_async_policy_gets_fresh_token_with_bypass_cache_when_claims_challenged(
    tls: Tls, ca_file: str, emulator: ImdsEmulator
) -> None:
    spy = AsyncSpyCredential(AsyncImdsManagedIdentityCredential(endpoint=emulator.endpoint))
    with LoopbackHttps(tls, _challenge_replies()) as server:
        async with spy, _async_pipeline(server.url, spy, ca_file) as client:
            assert await _aget(client, server.url) == 200
            assert await _aget(client, server.url) == 200
        _assert_fresh_token_after_challenge(server, emulator, spy.calls)
