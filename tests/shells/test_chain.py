"""In azure-identity's ChainedTokenCredential (a test-only dependency): when the chain moves on.

The chain tries the next credential only on `azure.identity.CredentialUnavailableError`.
Ours must be that when IMDS is absent or has no identity, and must stop the chain when IMDS
is present and failing: the same decision in the sync and the async shell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.identity
import azure.identity.aio
import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.exceptions import ClientAuthenticationError

from azure_imds_credential import CredentialUnavailableError, ImdsError
from azure_imds_credential.testing import Fault, ImdsEmulator
from tests.conftest import FakeClock, Shell
from tests.helpers.servers import free_port

SCOPE = "https://storage.azure.com/.default"
FALLBACK_TOKEN = "fallback-token"
FALLBACK_EXPIRES_ON = 4_102_444_800  # 2100-01-01


class Fallback:
    """The next credential in the chain: a fixed token, and a count of calls."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls += 1
        return AccessToken(FALLBACK_TOKEN, FALLBACK_EXPIRES_ON)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        self.calls += 1
        return AccessTokenInfo(FALLBACK_TOKEN, FALLBACK_EXPIRES_ON)

    def close(self) -> None:
        pass

    def __enter__(self) -> Fallback:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class AsyncFallback:
    """The async twin of `Fallback`."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls += 1
        return AccessToken(FALLBACK_TOKEN, FALLBACK_EXPIRES_ON)

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        self.calls += 1
        return AccessTokenInfo(FALLBACK_TOKEN, FALLBACK_EXPIRES_ON)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> AsyncFallback:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


def _chain(shell: Shell, ours: Any) -> tuple[Any, Fallback | AsyncFallback]:
    if shell.is_async:
        async_fallback = AsyncFallback()
        return azure.identity.aio.ChainedTokenCredential(ours, async_fallback), async_fallback
    fallback = Fallback()
    return azure.identity.ChainedTokenCredential(ours, fallback), fallback


def _close(shell: Shell, chain: Any) -> None:
    """Close a chain (which closes ours)."""
    shell.run(chain.close())


def _ask(shell: Shell, chain: Any, method: str) -> str:
    got = shell.call(getattr(chain, method), SCOPE)
    token: str = got.token
    return token


METHODS = pytest.mark.parametrize("method", ["get_token", "get_token_info"])


def _nothing_listening(emulator: ImdsEmulator) -> str:
    return f"http://127.0.0.1:{free_port()}"


def _identity_not_found(emulator: ImdsEmulator) -> str:
    emulator.always(
        Fault.status(400, {"error": "invalid_request", "error_description": "Identity not found"})
    )
    return emulator.endpoint


@METHODS
@pytest.mark.parametrize(
    "arrange",
    [pytest.param(_nothing_listening, id="nothing_listening"), pytest.param(_identity_not_found, id="400")],
)
def test_chain_uses_fallback_token_when_imds_unavailable(
    shell: Shell,
    emulator: ImdsEmulator,
    clock: FakeClock,
    method: str,
    arrange: Callable[[ImdsEmulator], str],
) -> None:
    ours = shell.credential(endpoint=arrange(emulator), clock=clock)
    chain, fallback = _chain(shell, ours)
    try:
        assert _ask(shell, chain, method) == FALLBACK_TOKEN
        assert fallback.calls == 1
        assert clock.sleeps == []
    finally:
        _close(shell, chain)


@METHODS
def test_chain_uses_our_token_when_imds_healthy(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock, method: str
) -> None:
    ours = shell.credential(endpoint=emulator.endpoint, clock=clock)
    chain, fallback = _chain(shell, ours)
    try:
        token = _ask(shell, chain, method)
        assert token in emulator.issued_tokens()
        assert fallback.calls == 0
    finally:
        _close(shell, chain)


@METHODS
def test_chain_raises_without_fallback_when_imds_present_and_failing(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock, method: str
) -> None:
    """Deliberate design: IMDS is there and failing, so the chain stops (sync and async alike)
    instead of silently using another identity."""
    emulator.always(Fault.status(500))
    ours = shell.credential(endpoint=emulator.endpoint, clock=clock)
    chain, fallback = _chain(shell, ours)
    try:
        with pytest.raises(ClientAuthenticationError) as caught:
            _ask(shell, chain, method)
        assert not isinstance(caught.value, azure.identity.CredentialUnavailableError)
        assert fallback.calls == 0
        assert len(emulator.token_requests) == 6
        assert clock.sleeps != []
    finally:
        _close(shell, chain)
    # Directly, the same condition is an ImdsError that is not "unavailable".
    with pytest.raises(ImdsError) as direct:
        shell.call(ours.get_token, SCOPE)
    assert not isinstance(direct.value, azure.identity.CredentialUnavailableError)


def test_credential_raises_azure_identity_unavailable_error_when_imds_absent(
    shell: Shell, clock: FakeClock
) -> None:
    cred = shell.credential(endpoint=f"http://127.0.0.1:{free_port()}", clock=clock)
    with pytest.raises(CredentialUnavailableError) as caught:
        shell.call(cred.get_token, SCOPE)
    # azure.identity is imported (above): the raised error is also its unavailable error.
    assert isinstance(caught.value, azure.identity.CredentialUnavailableError)
    assert isinstance(caught.value, ClientAuthenticationError)
    assert caught.value.attempts == 1


def test_chain_close_closes_our_credential_when_chain_closed(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    ours = shell.credential(endpoint=emulator.endpoint, clock=clock)
    chain, _ = _chain(shell, ours)
    assert _ask(shell, chain, "get_token") in emulator.issued_tokens()
    transport = ours._client._transport
    assert transport is not None
    shell.run(chain.close())
    if shell.name.endswith("-requests"):
        # An injected transport is the caller's: closing ours leaves it in place.
        assert ours._client._transport is transport
    else:
        # The chain closed ours: the transport it had made is released.
        assert ours._client._transport is None
