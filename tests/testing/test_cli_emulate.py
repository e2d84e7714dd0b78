"""`azure-imds-token emulate` as a user runs it: a subprocess, stopped by SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from contextlib import AbstractContextManager

import pytest

from azure_imds_credential import ImdsManagedIdentityCredential
from azure_imds_credential._cli_emulate import is_loopback
from azure_imds_credential.testing import Identity, decode_jwt_claims
from tests.conftest import FakeClock
from tests.helpers.cli import ROOT, WAIT, Running, cli_command, env_without_endpoint, running
from tests.testing.helpers import REAL_TOKEN_PREFIX, SCOPE, fetch


def _env() -> dict[str, str]:
    return env_without_endpoint()


def _command(*args: str) -> list[str]:
    return cli_command("emulate", "--port", "0", *args)


def emulate(*args: str) -> AbstractContextManager[Running]:
    return running("emulate", *args)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_emulate_serves_token_and_exits_0_when_signalled(sig: signal.Signals) -> None:
    with emulate() as running:
        assert running.endpoint == f"http://127.0.0.1:{running.port}"
        with ImdsManagedIdentityCredential(endpoint=running.endpoint) as credential:
            token = credential.get_token(SCOPE)
        assert decode_jwt_claims(token.token)["aud"] == "https://storage.azure.com"
        code, out, err = running.stop(sig)
    assert code == 0, err
    assert out == ""  # the export line was the only stdout
    assert (
        "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://storage.azure.com -> 200"
        in err
    )
    assert token.token not in err
    assert "still alive" not in err  # every server thread was joined
    with pytest.raises(ConnectionRefusedError):
        fetch(running.port, timeout=2)


def test_emulate_applies_faults_and_identities_when_given() -> None:
    app = Identity.user_assigned("app")
    with emulate("--fault", "503:times=1", "--identity", "user:app", "--lifetime", "10m") as running:
        # A fake clock: the retry after the 503 costs no real second.
        with ImdsManagedIdentityCredential(
            endpoint=running.endpoint, client_id=app.client_id, clock=FakeClock()
        ) as credential:
            token = credential.get_token(SCOPE)
        code, _, err = running.stop(signal.SIGTERM)
    assert code == 0
    claims = decode_jwt_claims(token.token)
    assert claims["oid"] == app.object_id
    assert claims["exp"] - claims["iat"] == 600
    assert "-> 503 [status]" in err and "-> 200" in err
    assert app.client_id in err  # the banner lists identities to paste into client code


def test_emulate_answers_rate_limited_when_flag_given() -> None:
    with emulate("--rate-limit", "--latency", "30s") as running:
        # Nothing to saturate from here without threads: check the banner, and that latency
        # does not hold header-less requests (IMDS refuses those at once).
        assert fetch(running.port, headers={}).status == 400
        code, _, err = running.stop(signal.SIGINT)
    assert code == 0
    assert "rate limit: 20 requests/s, 5 concurrent" in err


def test_emulate_proxies_source_tokens_without_logging_them_when_token_source_given() -> None:
    with emulate("--token-source", "tests.testing.helpers:make_credential") as running:
        with ImdsManagedIdentityCredential(endpoint=running.endpoint) as credential:
            token = credential.get_token(SCOPE)
        code, out, err = running.stop(signal.SIGTERM)
    assert code == 0
    assert token.token == f"{REAL_TOKEN_PREFIX}{SCOPE}:1"
    assert REAL_TOKEN_PREFIX not in out + err


@pytest.mark.parametrize(
    "args",
    [
        ("--fault", "999"),
        ("--fault", "410:for=soon"),
        ("--identity", "admin"),
        ("--token-source", "nonsense"),
        ("--port", "70000"),
        ("--lifetime", "-1"),
    ],
)
def test_emulate_exits_64_when_usage_is_wrong(args: tuple[str, ...]) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv
        _command(*args), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert result.returncode == 64, result.stderr
    assert "error:" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("tests.testing.helpers:make_not_a_credential", "did not return a TokenCredential"),
        ("tests.testing.no_such_module:make", "cannot load it"),
    ],
)
def test_emulate_exits_1_when_token_source_cannot_be_loaded(source: str, message: str) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv
        _command("--token-source", source),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""  # no export line for an emulator that never started


def test_emulate_explains_missing_azure_identity_when_azure_cli_source_chosen() -> None:
    # azure-identity is installed here: hide it, as on a machine without it.
    code = (
        "import sys, runpy\n"
        "sys.modules['azure.identity'] = None\n"
        "sys.argv = ['azure-imds-token', 'emulate', '--token-source', 'azure-cli']\n"
        "runpy.run_module('azure_imds_credential', run_name='__main__')\n"
    )
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 1
    assert "pip install azure-identity" in result.stderr


def test_emulate_warns_when_host_is_not_loopback() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the bind fails, after the warning.
    result = subprocess.run(  # noqa: S603 - fixed argv
        _command("--host", "192.0.2.1"),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert "warning: binding '192.0.2.1', not loopback" in result.stderr
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.4", False),
        ("myhost.example", False),
    ],
)
def test_is_loopback_says_whether_host_stays_local_when_asked(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_emulate_help_documents_fault_and_identity_syntax_when_asked() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "azure_imds_credential", "emulate", "--help"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0
    for needle in (
        "410:for=16s",
        "429:retry-after=2:times=3",
        "docker403",
        "user:NAME",
        "azure-cli",
        "MODULE:CALLABLE",
    ):
        assert needle in result.stdout
