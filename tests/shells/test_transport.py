"""What goes over the wire: headers, proxies, redirects, fail-fast, probe, presence, concurrency.

Every server a test starts binds 127.0.0.1 and is stopped by the test.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from azure_imds_credential import CredentialUnavailableError, ImdsError
from azure_imds_credential.testing import Fault, ImdsEmulator, SilentServer, dropped_syn_endpoint
from tests.conftest import FakeClock, Shell
from tests.helpers.servers import RecordingProxy, free_port

SCOPE = "https://storage.azure.com/.default"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def test_get_token_sends_metadata_header_without_forwarded_for_when_asking_imds(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    emulator.push(Fault.status(500))  # a retry too: every request carries the same headers
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    token = shell.call(cred.get_token, SCOPE)
    assert token.token in emulator.issued_tokens()
    requests = emulator.token_requests
    assert len(requests) == 2
    for record in requests:
        assert record.headers.get("metadata") == "true"
        assert "x-forwarded-for" not in record.headers
    assert all("x-forwarded-for" not in record.headers for record in emulator.requests)


def test_get_token_ignores_environment_proxies_when_they_are_set(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordingProxy() as proxy:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # The environment really routes loopback traffic through the proxy for a client that
        # honours it (otherwise this test could not tell the difference).
        with pytest.raises(urllib.error.HTTPError) as through_proxy:
            # A fresh opener: urlopen's global one keeps the proxies of its first use.
            urllib.request.build_opener().open(f"{emulator.endpoint}/", timeout=5)
        through_proxy.value.close()
        assert through_proxy.value.code == 502
        assert proxy.recorded
        proxy.clear()

        cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
        token = shell.call(cred.get_token, SCOPE)
        assert token.token in emulator.issued_tokens()
        assert proxy.recorded == []
        assert len(emulator.token_requests) == 1


def test_get_token_does_not_follow_redirect_when_imds_redirects(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    with ImdsEmulator() as target:
        emulator.push(
            Fault.redirect(
                f"{target.endpoint}/metadata/identity/oauth2/token"
                "?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com"
            )
        )
        cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
        with pytest.raises(CredentialUnavailableError) as caught:
            shell.call(cred.get_token, SCOPE)
        assert caught.value.status == 302
        assert target.requests == []
        assert target.issued_tokens() == []


def test_get_token_fails_fast_unavailable_when_nothing_listens(shell: Shell, clock: FakeClock) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    cred = shell.credential(endpoint=endpoint, clock=clock)
    with pytest.raises(CredentialUnavailableError) as caught:
        shell.call(cred.get_token, SCOPE)
    assert caught.value.attempts == 1
    assert caught.value.status is None
    assert clock.sleeps == []
    assert endpoint in str(caught.value)


def test_get_token_fails_fast_unavailable_when_syns_are_dropped(shell: Shell, clock: FakeClock) -> None:
    with dropped_syn_endpoint() as endpoint:
        if endpoint is None:
            pytest.skip("this host does not drop SYNs when a listener's accept queue is full")
        cred = shell.credential(endpoint=endpoint, clock=clock, connect_timeout=0.3)
        with pytest.raises(CredentialUnavailableError) as caught:
            shell.call(cred.get_token, SCOPE)
        assert caught.value.attempts == 1
        assert clock.sleeps == []


def test_get_token_unavailable_after_probe_when_server_never_answers(shell: Shell, clock: FakeClock) -> None:
    server = SilentServer()
    try:
        server.__enter__()
        cred = shell.credential(endpoint=server.endpoint, clock=clock, first_answer_timeout=0.3)
        with pytest.raises(CredentialUnavailableError) as caught:
            shell.call(cred.get_token, SCOPE)
        assert "probe" in str(caught.value)
        assert caught.value.attempts == 1
        assert clock.sleeps == []
    finally:
        server.stop()
    # The token request, then the header-less probe: nothing more.
    assert server.connections == 2


def test_get_token_returns_token_after_probe_when_imds_is_slow(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    emulator.latency = 0.6  # token requests only: IMDS answers the header-less probe at once
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock, first_answer_timeout=0.2)
    token = shell.call(cred.get_token, SCOPE)
    assert token.token in emulator.issued_tokens()
    probes = [record for record in emulator.requests if "metadata" not in record.headers]
    assert len(probes) == 1
    assert probes[0].status == 400
    # The first request timed out; the second waited the full attempt time.
    assert len(emulator.token_requests) == 2
    assert clock.sleeps == []


def test_get_token_retries_refusals_when_imds_was_seen_in_this_process(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    endpoint = emulator.endpoint
    first = shell.credential(endpoint=endpoint, clock=clock)
    assert shell.call(first.get_token, SCOPE).token in emulator.issued_tokens()
    emulator.stop()

    # A new credential, no cache: only the process-wide memory that IMDS answered here.
    second = shell.credential(endpoint=endpoint, clock=clock)
    with pytest.raises(ImdsError) as caught:
        shell.call(second.get_token, SCOPE)
    assert not isinstance(caught.value, CredentialUnavailableError)
    assert caught.value.attempts > 1
    assert clock.sleeps != []


def test_get_token_returns_token_when_imds_appears_after_a_failure(shell: Shell, clock: FakeClock) -> None:
    port = free_port()
    cred = shell.credential(endpoint=f"http://127.0.0.1:{port}", clock=clock)
    with pytest.raises(CredentialUnavailableError):
        shell.call(cred.get_token, SCOPE)
    # The failure is not remembered: the same credential asks again, and IMDS is there now.
    with ImdsEmulator(port=port) as emulator:
        token = shell.call(cred.get_token, SCOPE)
        assert token.token in emulator.issued_tokens()
        assert len(emulator.token_requests) == 1


def test_get_token_keeps_five_requests_in_flight_when_twenty_resources_are_requested_at_once(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    emulator.latency = 0.2
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    scopes = [f"https://resource-{index}.example/.default" for index in range(20)]
    tokens: list[Any]
    if shell.is_async:

        async def all_at_once() -> list[Any]:
            return list(await asyncio.gather(*(cred.get_token(scope) for scope in scopes)))

        tokens = shell.call(all_at_once)
    else:
        with ThreadPoolExecutor(max_workers=len(scopes)) as pool:
            tokens = list(pool.map(cred.get_token, scopes))
    assert len(emulator.token_requests) == 20
    assert {record.query["resource"] for record in emulator.token_requests} == {
        scope.removesuffix("/.default") for scope in scopes
    }
    assert len({token.token for token in tokens}) == 20
    # IMDS allows 5 concurrent managed-identity requests per VM: never more, and it did
    # use all five (the requests really ran concurrently).
    assert emulator.max_in_flight == 5
