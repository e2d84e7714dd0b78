"""The relay in front of the emulator, in this process: IMDS's path, the REST path, /healthz,
IMDS's guards, limits, and how upstream failures reach a downstream credential."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from azure_imds_credential import CredentialUnavailableError, ImdsError, ImdsManagedIdentityCredential
from azure_imds_credential.relay import RelayLimits, TokenRelay
from azure_imds_credential.testing import Fault, Identity, ImdsEmulator, decode_jwt_claims
from tests.conftest import FakeClock
from tests.relay.helpers import RESOURCE, SCOPE, get, imds_url, rest_url

APP = Identity.user_assigned("app")


@pytest.fixture
def upstream() -> Iterator[ImdsEmulator]:
    with ImdsEmulator(identities=[Identity.system(), APP]) as running:
        yield running


@pytest.fixture
def relay(upstream: ImdsEmulator) -> Iterator[TokenRelay]:
    # A fake clock for the relay's credentials: upstream retries cost no real second.
    with TokenRelay(endpoint=upstream.endpoint, timeout=10.0, clock=FakeClock()) as running:
        yield running


def test_imds_path_answers_like_imds_when_metadata_header_given(
    relay: TokenRelay, upstream: ImdsEmulator
) -> None:
    reply = get(relay.port, imds_url())
    assert reply.status == 200
    body = reply.json()
    # IMDS's shape: every primitive a string.
    assert all(isinstance(value, str) for value in body.values())
    assert body["token_type"] == "Bearer" and body["resource"] == RESOURCE
    assert 0 < int(body["expires_in"]) <= 3600
    assert body["client_id"] == Identity.system().client_id
    assert body["access_token"] == upstream.issued_tokens()[0]
    assert reply.headers["server"].startswith("IMDS")


def test_rest_path_returns_the_same_token_object_when_asked_with_same_parameters(
    relay: TokenRelay, upstream: ImdsEmulator
) -> None:
    via_imds = get(relay.port, imds_url(client_id=APP.client_id)).json()
    via_rest = get(relay.port, rest_url(client_id=APP.client_id)).json()
    assert via_rest.keys() == via_imds.keys()
    assert via_rest["access_token"] == via_imds["access_token"]
    assert decode_jwt_claims(via_rest["access_token"])["oid"] == APP.object_id
    # One cache behind both paths: one upstream request.
    assert len(upstream.token_requests) == 1


def test_rest_path_accepts_scope_when_resource_is_not_given(relay: TokenRelay) -> None:
    reply = get(relay.port, f"/v1/identity/oauth2/token?scope={SCOPE}")
    assert reply.status == 200
    assert reply.json()["resource"] == RESOURCE


def test_relay_sends_one_upstream_request_when_many_callers_ask_for_one_resource(
    relay: TokenRelay, upstream: ImdsEmulator
) -> None:
    tokens = {get(relay.port, imds_url()).json()["access_token"] for _ in range(5)}
    assert len(tokens) == 1
    assert len(upstream.token_requests) == 1


def test_bypass_cache_fetches_upstream_and_updates_cache_when_true(
    relay: TokenRelay, upstream: ImdsEmulator
) -> None:
    first = get(relay.port, imds_url()).json()["access_token"]
    fresh = get(relay.port, imds_url(bypass_cache="true")).json()["access_token"]
    cached = get(relay.port, rest_url()).json()["access_token"]
    assert fresh != first  # the emulator minted a new one: IMDS's cache was bypassed too
    assert cached == fresh  # the relay's cache took the fresh token
    queries = [record.query for record in upstream.token_requests]
    assert [query.get("bypass_cache") for query in queries] == [None, "true"]


def test_authority_passes_through_when_given(relay: TokenRelay, upstream: ImdsEmulator) -> None:
    authority = "https://login.microsoftonline.com/contoso"
    assert get(relay.port, rest_url(authority=authority)).status == 200
    assert upstream.token_requests[0].query["authority"] == authority


@pytest.mark.parametrize(
    ("url", "description"),
    [
        ("/v1/identity/oauth2/token", "Required query variable 'resource' is missing"),
        (imds_url(resource=""), "Required query variable 'resource' is missing"),
        (rest_url(client_id="a", object_id="b"), "Only one of client_id, object_id and msi_res_id"),
        (rest_url(bypass_cache="maybe"), "must be true or false"),
        ("/metadata/identity/oauth2/token?resource=https://x", "'api-version' is missing"),
        (imds_url(**{"api-version": "2099-01-01"}), "Invalid api version"),
    ],
)
def test_relay_answers_400_invalid_request_when_input_is_bad(
    relay: TokenRelay, upstream: ImdsEmulator, url: str, description: str
) -> None:
    reply = get(relay.port, url)
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_request"
    assert description in reply.json()["error_description"]
    assert upstream.token_requests == []  # refused before IMDS is asked


@pytest.mark.parametrize("url", [imds_url(), rest_url()])
def test_token_paths_answer_400_when_metadata_header_is_missing(relay: TokenRelay, url: str) -> None:
    reply = get(relay.port, url, headers={})
    assert reply.status == 400
    assert reply.json()["error"] == "bad_request_102"


def test_relay_refuses_request_when_x_forwarded_for_is_present(
    relay: TokenRelay, upstream: ImdsEmulator
) -> None:
    reply = get(relay.port, imds_url(), headers={"Metadata": "true", "X-Forwarded-For": "10.0.0.9"})
    assert reply.status == 400
    assert "X-Forwarded-For" in reply.json()["error_description"]
    assert upstream.token_requests == []


def test_relay_answers_414_when_request_line_is_oversized(relay: TokenRelay) -> None:
    reply = get(relay.port, rest_url(resource="https://x/" + "a" * 5000))
    assert reply.status == 414
    assert reply.json()["error"] == "uri_too_long"


def test_relay_answers_431_when_headers_are_oversized(relay: TokenRelay) -> None:
    headers = {"Metadata": "true", **{f"X-Filler-{i}": "b" * 1000 for i in range(10)}}
    reply = get(relay.port, rest_url(), headers=headers)
    assert reply.status == 431
    assert reply.json()["error"] == "headers_too_large"


def test_relay_answers_405_when_method_is_not_get(relay: TokenRelay) -> None:
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/identity/oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 405")


def test_relay_answers_429_with_retry_after_when_rate_limit_is_passed(upstream: ImdsEmulator) -> None:
    # A rate so low that the bucket cannot refill during the test: no timing involved.
    limits = RelayLimits(rate=0.001, burst=2)
    with TokenRelay(endpoint=upstream.endpoint, limits=limits) as relay:
        statuses = [get(relay.port, imds_url()).status for _ in range(3)]
        refused = get(relay.port, imds_url())
    assert statuses == [200, 200, 429]
    assert refused.json()["error"] == "too_many_requests"
    assert int(refused.headers["retry-after"]) >= 1


def test_healthz_reports_reachability_and_lifetimes_without_tokens_when_tokens_cached(
    relay: TokenRelay, upstream: ImdsEmulator
) -> None:
    get(relay.port, imds_url())
    get(relay.port, rest_url(client_id=APP.client_id))
    reply = get(relay.port, "/healthz", headers={})
    assert reply.status == 200
    health = reply.json()
    assert health["status"] == "ok" and health["imds"]["reachable"] is True
    assert health["cache"]["tokens"] == 2
    assert {entry["identity"] for entry in health["cache"]["entries"]} == {
        "system-assigned identity",
        f"identity client_id={APP.client_id}",
    }
    assert all(0 < entry["expires_in"] <= 3600 for entry in health["cache"]["entries"])
    for token in upstream.issued_tokens():
        assert token not in reply.body.decode()


def test_healthz_answers_503_when_upstream_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nothing listens once the socket is closed
    with TokenRelay(endpoint=f"http://127.0.0.1:{closed_port}") as relay:
        reply = get(relay.port, "/healthz", headers={})
    assert reply.status == 503
    assert reply.json()["imds"]["reachable"] is False


def test_downstream_credential_raises_unavailable_when_identity_not_found_upstream(
    relay: TokenRelay, upstream: ImdsEmulator
) -> None:
    reply = get(relay.port, imds_url(client_id="00000000-0000-0000-0000-000000000000"))
    assert reply.status == 400
    assert reply.json() == {"error": "invalid_request", "error_description": "Identity not found"}
    with (
        ImdsManagedIdentityCredential(
            endpoint=relay.endpoint, client_id="11111111-1111-1111-1111-111111111111"
        ) as c,
        pytest.raises(CredentialUnavailableError) as raised,
    ):
        c.get_token(SCOPE)
    assert raised.value.status == 400
    assert raised.value.error_description == "Identity not found"


def test_downstream_credential_raises_imds_error_when_upstream_fails_forever(
    relay: TokenRelay, upstream: ImdsEmulator
) -> None:
    upstream.always(Fault.status(500))
    reply = get(relay.port, imds_url())
    assert reply.status == 500  # the last upstream status, after the relay's own retries
    assert set(reply.json()) == {"error", "error_description"}
    assert "Traceback" not in reply.body.decode()
    # The downstream credential retries a 500 too (a fake clock: no real waiting), then
    # stops the chain with ImdsError, not "unavailable": IMDS is there and failing.
    with (
        ImdsManagedIdentityCredential(endpoint=relay.endpoint, clock=FakeClock()) as credential,
        pytest.raises(ImdsError) as raised,
    ):
        credential.get_token(SCOPE)
    assert not isinstance(raised.value, CredentialUnavailableError)
    assert raised.value.status == 500


def test_relay_answers_400_when_upstream_is_not_reachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with TokenRelay(endpoint=f"http://127.0.0.1:{closed_port}") as relay:
        reply = get(relay.port, imds_url())
    # Not on Azure upstream: "unavailable" downstream too, so a chain moves on.
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_request"


def test_relay_refuses_to_start_when_upstream_is_itself() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    relay = TokenRelay(port=port, endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(ValueError, match="is this relay"):
        relay.start()
    relay.stop()


def test_relay_never_logs_token_when_debug_logging_is_on(
    relay: TokenRelay, upstream: ImdsEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    get(relay.port, imds_url())
    get(relay.port, rest_url(bypass_cache="true"))
    get(relay.port, "/healthz", headers={})
    assert "-> 200" in caplog.text
    for token in upstream.issued_tokens():
        assert token not in caplog.text
