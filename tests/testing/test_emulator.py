"""Tests of the IMDS emulator itself, with the standard library's HTTP client only."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest

from azure_imds_credential.testing import (
    Fault,
    Identity,
    ImdsEmulator,
    decode_jwt_claims,
    make_jwt,
)

TOKEN_PATH = "/metadata/identity/oauth2/token"
IMDS_SERVER = "IMDS/150.870.65.1325"
RESOURCE = "https://storage.azure.com"
META = {"Metadata": "true"}


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.body = response.read()

    def json(self) -> Any:
        return json.loads(self.body)


def token_url(**params: str) -> str:
    query = {"api-version": "2018-02-01", "resource": RESOURCE, **params}
    return f"{TOKEN_PATH}?{urlencode(query)}"


def fetch(
    imds: ImdsEmulator,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    timeout: float = 10.0,
) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", imds.port, timeout=timeout)
    try:
        connection.request(method, url or token_url(), headers=dict(META if headers is None
                                                                     else headers))
        return Reply(connection.getresponse())
    finally:
        connection.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("imds-emulator")]


class Background:
    """Run a request in a thread; remember what it raised or returned."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.outcome: Any = None

        def run() -> None:
            try:
                self.outcome = call()
            except Exception as exc:
                self.outcome = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.outcome


@pytest.fixture
def imds() -> Iterator[ImdsEmulator]:
    with ImdsEmulator() as emulator:
        yield emulator


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- normal answers ------------------------------------------------------------------------


def test_token_endpoint_returns_imds_shaped_token_when_request_is_valid(
    imds: ImdsEmulator,
) -> None:
    reply = fetch(imds)
    body = reply.json()
    assert reply.status == 200
    assert reply.headers["server"] == IMDS_SERVER
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert set(body) == {"access_token", "refresh_token", "expires_in", "expires_on",
                         "ext_expires_in", "not_before", "resource", "token_type",
                         "client_id"}
    assert body["expires_in"] == "3600"
    assert all(isinstance(value, str) for value in body.values())
    assert body["token_type"] == "Bearer"
    assert body["resource"] == RESOURCE
    assert body["client_id"] == Identity.system().client_id
    assert imds.issued_tokens() == [body["access_token"]]


def test_token_endpoint_sends_json_numbers_when_numbers_as_strings_is_false() -> None:
    with ImdsEmulator(numbers_as_strings=False, content_type="text/plain") as imds:
        reply = fetch(imds)
    body = reply.json()
    assert reply.headers["content-type"] == "text/plain"
    for name in ("expires_in", "expires_on", "ext_expires_in", "not_before"):
        assert isinstance(body[name], int)
    assert body["expires_in"] == 3600


def test_token_endpoint_uses_clock_and_lifetime_when_minting() -> None:
    clock = FakeClock()
    with ImdsEmulator(clock=clock, lifetime=2.0) as imds:
        body = fetch(imds).json()
    assert body["expires_in"] == "2"
    assert body["expires_on"] == str(int(clock.now) + 2)
    assert body["not_before"] == str(int(clock.now))


def test_token_claims_describe_identity_and_resource_when_user_assigned() -> None:
    identity = Identity.user_assigned("worker")
    clock = FakeClock()
    with ImdsEmulator(identities=[identity], tenant_id="tenant-1", clock=clock) as imds:
        token = fetch(imds).json()["access_token"]
    claims = decode_jwt_claims(token)
    assert claims["aud"] == RESOURCE
    assert claims["iss"] == "https://sts.windows.net/tenant-1/"
    assert claims["tid"] == "tenant-1"
    assert claims["oid"] == claims["sub"] == identity.object_id
    assert claims["appid"] == claims["azp"] == identity.client_id
    assert claims["idtyp"] == "app"
    assert claims["xms_mirid"] == identity.msi_res_id
    assert claims["iat"] == claims["nbf"] == int(clock.now)
    assert claims["exp"] == int(clock.now) + 3600
    assert claims["uti"] and claims["jti"]


def test_token_claims_omit_mirid_when_system_assigned(imds: ImdsEmulator) -> None:
    claims = decode_jwt_claims(fetch(imds).json()["access_token"])
    assert "xms_mirid" not in claims


def test_jwt_round_trips_claims_and_differs_when_claims_are_equal() -> None:
    first, second = make_jwt({"a": 1}), make_jwt({"a": 1})
    assert decode_jwt_claims(first) == {"a": 1}
    assert first != second
    header = json.loads(base64.urlsafe_b64decode(first.split(".")[0] + "=="))
    assert header == {"typ": "JWT", "alg": "RS256", "kid": "emulator"}


def test_decode_jwt_claims_raises_when_token_is_malformed() -> None:
    with pytest.raises(ValueError, match="not a JWT"):
        decode_jwt_claims("secret-value")
    with pytest.raises(ValueError, match="not a JWT"):
        decode_jwt_claims("a.!!!.c")


def test_identity_factories_are_deterministic_when_called_twice() -> None:
    assert Identity.user_assigned("a") == Identity.user_assigned("a")
    assert Identity.user_assigned("a") != Identity.user_assigned("b")
    assert Identity.system() == Identity.system()
    assert Identity.system().system_assigned and Identity.system().msi_res_id is None
    msi = Identity.user_assigned("a").msi_res_id
    assert msi is not None
    assert msi.startswith("/subscriptions/")
    assert msi.endswith("/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
                        "userAssignedIdentities/a")


def test_connection_is_reused_when_client_keeps_it_alive(imds: ImdsEmulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", imds.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", token_url(), headers=META)
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            assert not response.will_close
    finally:
        connection.close()


# -- IMDS guards ---------------------------------------------------------------------------


def test_token_endpoint_refuses_400_when_metadata_header_missing(imds: ImdsEmulator) -> None:
    imds.latency = 30.0  # must not apply: IMDS refuses at once
    imds.push(Fault.status(500))
    reply = fetch(imds, headers={})
    assert reply.status == 400
    assert reply.headers["server"] == IMDS_SERVER
    assert reply.json() == {"error": "bad_request_102",
                            "error_description": "Required metadata header not specified"}
    imds.latency = 0.0
    assert fetch(imds).status == 500  # the fault was not consumed
    assert len(imds.requests) == 2
    assert len(imds.token_requests) == 1


@pytest.mark.parametrize("value", ["True", "1", ""])
def test_token_endpoint_refuses_400_when_metadata_value_is_not_true(
    imds: ImdsEmulator, value: str
) -> None:
    assert fetch(imds, headers={"Metadata": value}).json()["error"] == "bad_request_102"


def test_token_endpoint_accepts_metadata_header_when_name_case_differs(
    imds: ImdsEmulator,
) -> None:
    assert fetch(imds, headers={"METADATA": "true"}).status == 200


def test_token_endpoint_refuses_400_when_x_forwarded_for_present(imds: ImdsEmulator) -> None:
    reply = fetch(imds, headers={**META, "X-Forwarded-For": "10.0.0.1"})
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_request"


@pytest.mark.parametrize("version", ["2018-02-01", "2018-04-02", "2018-10-01"])
def test_token_endpoint_answers_200_when_api_version_is_supported(
    imds: ImdsEmulator, version: str
) -> None:
    assert fetch(imds, token_url(**{"api-version": version})).status == 200


@pytest.mark.parametrize(
    "url",
    [
        f"{TOKEN_PATH}?resource={RESOURCE}",
        token_url(**{"api-version": "2019-08-01"}),
        f"{TOKEN_PATH}?api-version=2018-02-01",
        token_url(resource=""),
    ],
    ids=["api-version-missing", "api-version-unknown", "resource-missing", "resource-empty"],
)
def test_token_endpoint_refuses_400_when_query_is_invalid(imds: ImdsEmulator, url: str) -> None:
    reply = fetch(imds, url)
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_request"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_token_endpoint_answers_405_when_method_is_not_get(
    imds: ImdsEmulator, method: str
) -> None:
    reply = fetch(imds, method=method)
    assert reply.status == 405
    assert reply.headers["allow"] == "GET"


def test_emulator_answers_404_json_when_path_is_unknown(imds: ImdsEmulator) -> None:
    reply = fetch(imds, "/metadata/instance?api-version=2021-02-01")
    assert reply.status == 404
    assert reply.headers["server"] == IMDS_SERVER
    assert "error" in reply.json()


# -- identity selection ----------------------------------------------------------------------

SYSTEM = Identity.system()
ALPHA = Identity.user_assigned("alpha")
BETA = Identity.user_assigned("beta")


@pytest.mark.parametrize(
    ("selector", "value"),
    [
        ("client_id", BETA.client_id),
        ("object_id", BETA.object_id.upper()),
        ("msi_res_id", (BETA.msi_res_id or "").upper()),
    ],
)
def test_identity_selection_picks_named_identity_when_selector_given(
    selector: str, value: str
) -> None:
    with ImdsEmulator(identities=[SYSTEM, ALPHA, BETA]) as imds:
        body = fetch(imds, token_url(**{selector: value})).json()
    assert body["client_id"] == BETA.client_id
    assert decode_jwt_claims(body["access_token"])["oid"] == BETA.object_id


@pytest.mark.parametrize(
    ("identities", "expected"),
    [([ALPHA, SYSTEM], SYSTEM), ([ALPHA], ALPHA)],
    ids=["system-preferred", "single-user-assigned"],
)
def test_identity_selection_uses_default_when_no_selector(
    identities: list[Identity], expected: Identity
) -> None:
    with ImdsEmulator(identities=identities) as imds:
        assert fetch(imds).json()["client_id"] == expected.client_id


@pytest.mark.parametrize(
    ("identities", "params"),
    [
        ([ALPHA, BETA], {}),
        ([], {}),
        ([SYSTEM], {"client_id": ALPHA.client_id}),
        ([SYSTEM, ALPHA], {"msi_res_id": "/subscriptions/x/nope"}),
    ],
    ids=["ambiguous", "no-identity", "unknown-client-id", "unknown-msi-res-id"],
)
def test_identity_selection_answers_identity_not_found_when_no_match(
    identities: list[Identity], params: dict[str, str]
) -> None:
    with ImdsEmulator(identities=identities) as imds:
        reply = fetch(imds, token_url(**params))
    assert reply.status == 400
    assert reply.json() == {"error": "invalid_request", "error_description": "Identity not found"}


def test_identity_selection_refuses_400_when_two_selectors_given() -> None:
    with ImdsEmulator(identities=[ALPHA]) as imds:
        reply = fetch(imds, token_url(client_id=ALPHA.client_id, object_id=ALPHA.object_id))
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_request"


# -- IMDS's cache ------------------------------------------------------------------------------


def test_cache_returns_same_token_when_asked_again(imds: ImdsEmulator) -> None:
    first, second = fetch(imds).json(), fetch(imds).json()
    assert first["access_token"] == second["access_token"]
    other = fetch(imds, token_url(resource="https://vault.azure.net")).json()
    assert other["access_token"] != first["access_token"]
    assert len(imds.issued_tokens()) == 2


@pytest.mark.parametrize("flag", ["true", "True", "TRUE"])
def test_cache_is_bypassed_when_bypass_cache_is_true(imds: ImdsEmulator, flag: str) -> None:
    first = fetch(imds).json()["access_token"]
    second = fetch(imds, token_url(bypass_cache=flag)).json()["access_token"]
    assert first != second
    assert fetch(imds).json()["access_token"] == second


def test_cache_mints_new_token_when_cached_one_nears_expiry() -> None:
    clock = FakeClock()
    with ImdsEmulator(clock=clock) as imds:
        first = fetch(imds).json()
        clock.now += 3600 - 301
        again = fetch(imds).json()
        assert again["access_token"] == first["access_token"]
        assert again["expires_in"] == "301"
        clock.now += 2
        fresh = fetch(imds).json()
    assert fresh["access_token"] != first["access_token"]
    assert fresh["expires_in"] == "3600"


def test_lifetime_change_applies_when_token_was_cached(imds: ImdsEmulator) -> None:
    fetch(imds)
    imds.lifetime = 2.0
    assert fetch(imds).json()["expires_in"] == "2"


# -- faults ----------------------------------------------------------------------------------


def test_status_fault_sends_imds_error_when_no_body_given(imds: ImdsEmulator) -> None:
    imds.push(Fault.status(503))
    reply = fetch(imds)
    assert reply.status == 503
    assert reply.headers["server"] == IMDS_SERVER
    assert set(reply.json()) == {"error", "error_description"}
    assert imds.token_requests[-1].fault == "status"
    assert fetch(imds).status == 200  # consumed once


def test_status_fault_sends_given_body_and_headers_when_overridden(imds: ImdsEmulator) -> None:
    imds.push(Fault.status(410, {"error": "gone"}, headers={"Server": "", "X-Extra": "1"}),
              Fault.status(500, "oops"), Fault.status(400, b"\x00raw"))
    reply = fetch(imds)
    assert (reply.status, reply.json()) == (410, {"error": "gone"})
    assert "server" not in reply.headers
    assert reply.headers["x-extra"] == "1"
    reply = fetch(imds)
    assert (reply.status, reply.body) == (500, b"oops")
    assert reply.headers["content-type"].startswith("text/plain")
    assert fetch(imds).body == b"\x00raw"


def test_docker_403_fault_answers_plain_text_when_applied(imds: ImdsEmulator) -> None:
    imds.push(Fault.docker_403())
    reply = fetch(imds)
    assert reply.status == 403
    assert reply.headers["content-type"] == "text/plain"
    assert "server" not in reply.headers
    assert b"socket operation was attempted to an unreachable network" in reply.body


@pytest.mark.parametrize(("seconds", "header"), [(3, "3"), (1.5, "1.5"),
                                                 ("Wed, 21 Oct 2015 07:28:00 GMT",
                                                  "Wed, 21 Oct 2015 07:28:00 GMT")])
def test_retry_after_fault_sends_header_when_applied(
    imds: ImdsEmulator, seconds: float | str, header: str
) -> None:
    imds.push(Fault.retry_after(seconds=seconds), Fault.retry_after(503, 7))
    reply = fetch(imds)
    assert (reply.status, reply.headers["retry-after"]) == (429, header)
    assert reply.headers["server"] == IMDS_SERVER
    reply = fetch(imds)
    assert (reply.status, reply.headers["retry-after"]) == (503, "7")


def test_delay_fault_answers_token_when_delay_elapses(imds: ImdsEmulator) -> None:
    imds.push(Fault.delay(0.01))
    assert fetch(imds).status == 200
    assert imds.token_requests[-1].fault == "delay"


def test_hang_fault_drops_connection_when_client_times_out(imds: ImdsEmulator) -> None:
    imds.push(Fault.hang())
    with pytest.raises(TimeoutError):
        fetch(imds, timeout=0.05)
    wait_until(lambda: len(imds.token_requests) == 1)
    assert fetch(imds).status == 200  # the fault was used up by the hung request
    record = imds.token_requests[0]
    assert (record.status, record.fault) == (None, "hang")


def test_reset_fault_resets_connection_when_applied(imds: ImdsEmulator) -> None:
    imds.push(Fault.reset())
    with pytest.raises(ConnectionResetError):
        fetch(imds)
    assert imds.token_requests[-1].status is None


def test_partial_body_fault_truncates_answer_when_applied(imds: ImdsEmulator) -> None:
    imds.push(Fault.partial_body())
    connection = http.client.HTTPConnection("127.0.0.1", imds.port, timeout=5)
    try:
        connection.request("GET", token_url(), headers=META)
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
        assert caught.value.partial.startswith(b'{"access_token"')
    finally:
        connection.close()


def test_slow_body_fault_delivers_whole_token_when_trickled(imds: ImdsEmulator) -> None:
    imds.push(Fault.slow_body(0.005, 4))
    reply = fetch(imds)
    assert reply.status == 200
    assert reply.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("fault", "content_type", "check"),
    [
        (Fault.non_json_200(), "text/plain", lambda body: body == b"hello"),
        (Fault.foreign_json_200(), "application/json",
         lambda body: "access_token" not in json.loads(body)),
        (Fault.html_200(), "text/html", lambda body: body.lstrip().startswith(b"<!DOCTYPE")),
    ],
    ids=["non-json", "foreign-json", "html"],
)
def test_foreign_200_faults_answer_something_else_when_applied(
    imds: ImdsEmulator, fault: Fault, content_type: str, check: Callable[[bytes], bool]
) -> None:
    imds.push(fault)
    reply = fetch(imds)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith(content_type)
    assert reply.headers.get("server") != IMDS_SERVER
    assert check(reply.body)


def test_redirect_fault_sends_location_when_applied(imds: ImdsEmulator) -> None:
    imds.push(Fault.redirect("http://127.0.0.1:1/elsewhere"), Fault.redirect("/x", code=307))
    reply = fetch(imds)
    assert (reply.status, reply.headers["location"]) == (302, "http://127.0.0.1:1/elsewhere")
    assert fetch(imds).status == 307


@pytest.mark.parametrize("size", [5, 300_000])
def test_huge_body_fault_sends_exact_size_when_applied(imds: ImdsEmulator, size: int) -> None:
    imds.push(Fault.huge_body(size))
    reply = fetch(imds)
    assert reply.status == 200
    assert len(reply.body) == size
    assert reply.body == b'{"access_token": "'[:size] + b"x" * max(0, size - 18)


def test_token_fault_overrides_and_removes_fields_when_applied(imds: ImdsEmulator) -> None:
    imds.push(Fault.token(expires_in="abc", expires_on=None, extra=[1]))
    body = fetch(imds).json()
    assert body["expires_in"] == "abc"
    assert "expires_on" not in body
    assert body["extra"] == [1]
    assert body["access_token"]


def test_fault_queue_is_fifo_and_always_applies_when_queue_empty(imds: ImdsEmulator) -> None:
    imds.push(Fault.status(500), Fault.status(404))
    imds.always(Fault.status(429))
    assert [fetch(imds).status for _ in range(4)] == [500, 404, 429, 429]
    imds.always(None)
    assert fetch(imds).status == 200


def test_clear_faults_restores_normal_answers_when_faults_pending(imds: ImdsEmulator) -> None:
    imds.push(Fault.status(500))
    imds.always(Fault.status(503))
    imds.clear_faults()
    assert fetch(imds).status == 200


# -- log, concurrency, lifecycle ------------------------------------------------------------------


def test_request_log_redacts_credentials_when_headers_carry_them(imds: ImdsEmulator) -> None:
    fetch(imds, headers={**META, "Authorization": "Bearer secret", "Cookie": "c=1"})
    fetch(imds, "/other", headers={})
    first, second = imds.requests
    assert first.method == "GET" and first.path == TOKEN_PATH
    assert first.query == {"api-version": "2018-02-01", "resource": RESOURCE}
    assert first.headers["authorization"] == "***"
    assert first.headers["cookie"] == "***"
    assert first.headers["metadata"] == "true"
    assert first.status == 200 and first.fault is None
    assert first.duration >= 0
    assert second.status == 404
    assert imds.token_requests == [first]
    imds.reset_log()
    assert imds.requests == []
    assert imds.max_in_flight == 0


def test_max_in_flight_counts_concurrent_requests_when_they_overlap(
    imds: ImdsEmulator,
) -> None:
    imds.push(*[Fault.delay(30) for _ in range(3)])
    clients = [Background(lambda: fetch(imds)) for _ in range(3)]
    wait_until(lambda: imds.max_in_flight == 3)
    imds.stop()  # releases the delayed requests without answering
    for client in clients:
        assert isinstance(client.join(), http.client.RemoteDisconnected)
    assert imds.max_in_flight == 3
    assert [record.status for record in imds.token_requests] == [None] * 3


def test_latency_holds_only_requests_with_header_when_set(imds: ImdsEmulator) -> None:
    imds.latency = 30.0
    client = Background(lambda: fetch(imds))
    wait_until(lambda: imds.max_in_flight == 1)
    assert fetch(imds, headers={}).status == 400  # answered although a request is held
    imds.stop()
    assert isinstance(client.join(), http.client.RemoteDisconnected)


def test_stop_releases_hung_request_and_threads_when_called(imds: ImdsEmulator) -> None:
    port = imds.port
    # A keep-alive client idling between requests must be let go too.
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        idle.request("GET", token_url(), headers=META)
        idle.getresponse().read()
        imds.push(Fault.hang())
        client = Background(lambda: fetch(imds, timeout=30))
        wait_until(lambda: any(r.fault == "hang" for r in imds.token_requests))
        imds.stop()
        assert isinstance(client.join(), http.client.RemoteDisconnected)
        assert idle.sock is not None
        assert idle.sock.recv(1) == b""
    finally:
        idle.close()
    assert emulator_threads() == []
    imds.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = imds.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_emulator_binds_loopback_and_restarts_when_started_again() -> None:
    imds = ImdsEmulator()
    with imds:
        assert imds.endpoint == f"http://127.0.0.1:{imds.port}"
        assert fetch(imds).status == 200
    with imds:
        assert fetch(imds).status == 200
    assert emulator_threads() == []
