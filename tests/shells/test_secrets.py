"""A token never reaches a log line, a repr, a str or an exception message.

A known token is driven through success, a retried failure and every failure kind, with
DEBUG logging on (the root logger, azure-core's and the HTTP stacks' loggers); then every
issued token and the injected one are looked for in the logs, the error and the reprs.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from azure_imds_credential import CredentialUnavailableError, ImdsError
from azure_imds_credential.testing import Fault, ImdsEmulator, make_jwt
from tests.conftest import FakeClock, Shell

SCOPE = "https://storage.azure.com/.default"
RESOURCE = "https://storage.azure.com"
DEBUG_LOGGERS = (
    None,  # root
    "azure",
    "azure.core",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure_imds_credential",
    "urllib3",
    "aiohttp",
)

# An Entra-shaped access token the tests inject into answers (IMDS tokens are JWTs).
KNOWN = make_jwt(
    {
        "aud": RESOURCE,
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "oid": "known-token-object-id",
        "note": "this token must never be printed",
    }
)


@dataclass(frozen=True)
class Case:
    id: str
    # Faults queued before each call (one call through the credential, one through the client).
    push: Callable[[], list[Fault]]
    # A fault for every request once the queue is empty.
    always: Callable[[], Fault] | None
    # None: a token comes back; else the error type expected.
    raises: type[ImdsError] | None
    # IMDS's error text reaches the message, with the token cut out.
    redacted: bool = False


def _error_json(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


def _padded_token_body() -> str:
    # A 200 past the 64 KiB cap whose first bytes hold the token.
    return '{"access_token": "' + KNOWN + '", "padding": "' + "x" * 100_000 + '"}'


CASES = [
    Case("success", lambda: [Fault.token(access_token=KNOWN)], None, None),
    Case(
        "retried_500",
        lambda: [Fault.status(500, _error_json("x", KNOWN)), Fault.token(access_token=KNOWN)],
        None,
        None,
    ),
    Case(
        "400_identity_not_found",
        lambda: [Fault.status(400, _error_json("invalid_request", f"Identity not found: {KNOWN}"))],
        None,
        CredentialUnavailableError,
        redacted=True,
    ),
    Case("docker_403", lambda: [Fault.docker_403()], None, CredentialUnavailableError),
    Case(
        "proxy_403_text_with_token",
        lambda: [Fault.status(403, f"dial tcp 169.254.169.254:80: {KNOWN}", headers={"Server": ""})],
        None,
        CredentialUnavailableError,
    ),
    Case(
        "imds_403_with_token",
        lambda: [Fault.status(403, _error_json("forbidden", f"token {KNOWN} rejected"))],
        None,
        ImdsError,
        redacted=True,
    ),
    Case(
        "500_forever",
        lambda: [],
        lambda: Fault.status(500, _error_json("x", KNOWN)),
        ImdsError,
        redacted=True,
    ),
    Case(
        "410_forever_token_in_code",
        lambda: [],
        lambda: Fault.status(410, _error_json(KNOWN, f"access_token={KNOWN}")),
        ImdsError,
        redacted=True,
    ),
    Case(
        "huge_200_with_token",
        lambda: [Fault.status(200, _padded_token_body())],
        None,
        CredentialUnavailableError,
    ),
    Case(
        "huge_500_with_token",
        lambda: [],
        lambda: Fault.status(500, '{"error": "x", "error_description": "' + KNOWN + "y" * 100_000 + '"}'),
        ImdsError,
    ),
    Case(
        "token_with_invalid_characters",
        lambda: [Fault.token(access_token=KNOWN + " \x00")],
        None,
        CredentialUnavailableError,
    ),
    Case(
        "token_with_unusable_lifetime",
        lambda: [Fault.token(access_token=KNOWN, expires_in="0", expires_on="0")],
        None,
        CredentialUnavailableError,
    ),
    Case(
        "real_token_unusable_lifetime",
        lambda: [Fault.token(expires_in="-5")],
        None,
        CredentialUnavailableError,
    ),
]


def _secrets(emulator: ImdsEmulator) -> list[str]:
    tokens = [KNOWN, *emulator.issued_tokens()]
    # The signature alone is the part that makes a token usable: it must not leak either.
    return tokens + [token.rsplit(".", 1)[-1] for token in tokens]


def _assert_no_secret(texts: Iterable[tuple[str, str]], secrets: list[str]) -> None:
    for where, text in texts:
        for secret in secrets:
            assert secret not in text, f"a token leaked into {where}"


def _error_texts(err: BaseException) -> list[tuple[str, str]]:
    texts = [
        ("str(err)", str(err)),
        ("repr(err)", repr(err)),
        ("traceback", "".join(traceback.format_exception(err))),
    ]
    for name in ("message", "error_code", "error_description", "args"):
        texts.append((f"err.{name}", str(getattr(err, name, ""))))
    return texts


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_token_never_appears_in_logs_errors_or_reprs_when_driven_through_each_path(
    shell: Shell,
    emulator: ImdsEmulator,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    case: Case,
) -> None:
    for name in DEBUG_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    if case.always is not None:
        emulator.always(case.always())
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    client = shell.client(endpoint=emulator.endpoint, clock=clock)
    shown: list[tuple[str, str]] = [("repr(credential)", repr(cred)), ("repr(client)", repr(client))]

    calls: list[tuple[str, Callable[[], Any]]] = [
        ("credential.get_token", lambda: shell.call(cred.get_token, SCOPE)),
        ("client.get_token", lambda: shell.call(client.get_token, RESOURCE)),
    ]
    results: list[Any] = []
    for name, call in calls:
        emulator.push(*case.push())
        if case.raises is None:
            results.append(call())
            continue
        with pytest.raises(ClientAuthenticationError) as caught:
            call()
        assert isinstance(caught.value, case.raises), f"{name}: {type(caught.value)}"
        if case.raises is ImdsError:
            assert not isinstance(caught.value, CredentialUnavailableError)
        if case.redacted:
            assert "***" in str(caught.value)
        shown += [(f"{name} {where}", text) for where, text in _error_texts(caught.value)]

    if case.raises is None:
        access, imds_token = results
        assert access.token == KNOWN and imds_token.access_token == KNOWN  # the token went through
        info = shell.call(cred.get_token_info, SCOPE)
        assert info.token == KNOWN
        shown += [
            ("repr(AccessToken)", repr(access)),
            ("repr(AccessTokenInfo)", repr(info)),
            ("repr(ImdsToken)", repr(imds_token)),
            ("str(ImdsToken)", str(imds_token)),
        ]
    shown += [("repr(credential) after", repr(cred)), ("repr(client) after", repr(client))]
    shown.append(("logs", caplog.text))
    assert caplog.records, "DEBUG logging captured nothing: the log check would be vacuous"
    _assert_no_secret(shown, _secrets(emulator))
