"""`token_source=`: the emulator as a dev proxy handing out another credential's tokens."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from azure_imds_credential import ImdsManagedIdentityCredential
from azure_imds_credential.testing import Identity, ImdsEmulator
from tests.testing.helpers import (
    REAL_TOKEN_LIFETIME,
    REAL_TOKEN_PREFIX,
    RESOURCE,
    SCOPE,
    FailingCredential,
    FakeCredential,
    SettableClock,
    fetch,
    token_url,
)


def test_token_source_credential_answers_imds_shape_when_asked_for_resource() -> None:
    credential = FakeCredential()
    with ImdsEmulator(token_source=credential) as imds:
        reply = fetch(imds.port)
    body = reply.json()
    assert reply.status == 200
    assert credential.scopes == [SCOPE]  # resource + "/.default"
    assert body["access_token"] == f"{REAL_TOKEN_PREFIX}{SCOPE}:1"
    assert body["resource"] == RESOURCE
    assert all(isinstance(value, str) for value in body.values())
    # expires_in from expires_on, on the emulator's clock (a second may tick in between).
    assert REAL_TOKEN_LIFETIME - 2 <= int(body["expires_in"]) <= REAL_TOKEN_LIFETIME
    assert imds.issued_tokens() == [body["access_token"]]


def test_token_source_callable_is_cached_until_bypass_when_asked_again() -> None:
    clock = SettableClock()
    calls: list[str] = []

    def source(scope: str) -> AccessToken:
        calls.append(scope)
        return AccessToken(f"t{len(calls)}", int(clock.now) + 600)

    with ImdsEmulator(token_source=source, clock=clock) as imds:
        first = fetch(imds.port).json()
        clock.now += 100
        again = fetch(imds.port).json()
        fresh = fetch(imds.port, token_url(bypass_cache="true")).json()
    assert (first["access_token"], first["expires_in"]) == ("t1", "600")
    assert (again["access_token"], again["expires_in"]) == ("t1", "500")  # IMDS's cache
    assert fresh["access_token"] == "t2"
    assert len(calls) == 2


def test_token_source_pair_is_accepted_when_callable_returns_tuple() -> None:
    clock = SettableClock()
    with ImdsEmulator(token_source=lambda scope: ("pair-token", int(clock.now) + 60), clock=clock) as imds:
        body = fetch(imds.port).json()
    assert (body["access_token"], body["expires_in"]) == ("pair-token", "60")


def test_token_source_failure_answers_500_without_details_when_source_raises() -> None:
    with ImdsEmulator(token_source=FailingCredential()) as imds:
        reply = fetch(imds.port)
    assert reply.status == 500
    assert reply.json() == {
        "error": "token_source_failed",
        "error_description": "RuntimeError: Please run 'az login' to set up an account",
    }


def test_token_source_bad_result_answers_500_when_source_returns_no_token() -> None:
    with ImdsEmulator(token_source=lambda scope: {"token": "secret-value"}) as imds:
        reply = fetch(imds.port)
    assert reply.status == 500
    assert b"secret-value" not in reply.body  # the message names the type, never the value


def test_token_source_still_selects_identity_when_client_id_unknown() -> None:
    app = Identity.user_assigned("app")
    with ImdsEmulator(token_source=FakeCredential(), identities=[app]) as imds:
        assert fetch(imds.port, token_url(client_id="nope")).status == 400
        assert fetch(imds.port, token_url(client_id=app.client_id)).json()["client_id"] == app.client_id


def test_token_source_raises_type_error_when_not_callable() -> None:
    bad: Any = 42
    with pytest.raises(TypeError, match="token_source"):
        ImdsEmulator(token_source=bad)


def test_credential_gets_source_token_when_emulator_proxies_it() -> None:
    with (
        ImdsEmulator(token_source=FakeCredential()) as imds,
        ImdsManagedIdentityCredential(endpoint=imds.endpoint) as credential,
    ):
        token = credential.get_token(SCOPE)
    assert token.token == f"{REAL_TOKEN_PREFIX}{SCOPE}:1"
    assert 0 < token.expires_on - time.time() <= REAL_TOKEN_LIFETIME
