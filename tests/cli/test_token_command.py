"""`azure-imds-token token` (the default command), run as a subprocess against the emulator."""

from __future__ import annotations

import json
import re
import shlex
from datetime import datetime

import pytest

from azure_imds_credential.testing import Fault, Identity, ImdsEmulator
from tests.helpers.servers import RecordingProxy, free_port

from ._run import assert_no_token_on_stderr, run_cli, run_cli_with_tty_stderr

AZ_KEYS = {"accessToken", "expiresOn", "expires_on", "tenant", "tokenType", "resource", "clientId"}
SYSTEM = Identity.system()
USER = Identity.user_assigned("app")


def _refused_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


# -- output formats --------------------------------------------------------------------------
def test_token_json_prints_the_az_keys_when_imds_gives_a_token(emulator: ImdsEmulator) -> None:
    result = run_cli("token", "--endpoint", emulator.endpoint, "--output", "json")

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == AZ_KEYS
    assert data["accessToken"] == emulator.issued_tokens()[-1]
    assert isinstance(data["expires_on"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", data["expiresOn"])
    # az's expiresOn is the local time of expires_on.
    assert data["expiresOn"] == datetime.fromtimestamp(data["expires_on"]).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert data["tokenType"] == "Bearer"
    assert data["resource"] == "https://management.azure.com/"
    assert data["clientId"] == SYSTEM.client_id
    assert data["tenant"] == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert result.stderr == ""


def test_token_is_the_default_command_when_no_command_is_named(emulator: ImdsEmulator) -> None:
    result = run_cli("--endpoint", emulator.endpoint)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accessToken"] == emulator.issued_tokens()[-1]


def test_token_output_token_prints_only_the_token_when_asked(emulator: ImdsEmulator) -> None:
    result = run_cli("--endpoint", emulator.endpoint, "-o", "token")

    assert result.returncode == 0, result.stderr
    assert result.stdout == emulator.issued_tokens()[-1] + "\n"
    assert_no_token_on_stderr(result, emulator.issued_tokens())


def test_token_output_env_prints_export_lines_when_asked(emulator: ImdsEmulator) -> None:
    result = run_cli(
        "token", "--endpoint", emulator.endpoint, "--resource", "https://x.example/?a=1&b", "-o", "env"
    )

    assert result.returncode == 0, result.stderr
    exported = {}
    for line in result.stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2
        name, _, value = words[1].partition("=")
        exported[name] = value
    assert exported["AZURE_ACCESS_TOKEN"] == emulator.issued_tokens()[-1]
    assert exported["AZURE_ACCESS_TOKEN_TYPE"] == "Bearer"
    assert exported["AZURE_ACCESS_TOKEN_RESOURCE"] == "https://x.example/?a=1&b"
    assert int(exported["AZURE_ACCESS_TOKEN_EXPIRES_ON"]) > 0
    # The `&` is quoted for the shell.
    assert "'https://x.example/?a=1&b'" in result.stdout


def test_token_output_claims_decodes_header_and_claims_without_the_token_when_asked(
    emulator: ImdsEmulator,
) -> None:
    result = run_cli(
        "--endpoint", emulator.endpoint, "--scope", "https://vault.azure.net/.default", "-o", "claims"
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["header"]["alg"] == "RS256"
    assert report["claims"]["aud"] == "https://vault.azure.net"
    for name in ("iat", "nbf", "exp"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["claims"][name])
    # expiresOn comes from expires_in on the local clock (immune to skew), not from `exp`.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["expiresOn"])
    assert 0 < report["expiresInSeconds"] <= 3600
    assert re.fullmatch(r"\d+m \d\ds", report["expiresIn"])
    token = emulator.issued_tokens()[-1]
    assert "eyJ" not in result.stdout
    assert token.split(".")[2] not in result.stdout
    assert_no_token_on_stderr(result, emulator.issued_tokens())


# -- what is sent ----------------------------------------------------------------------------
def test_token_scope_is_sent_as_its_resource_when_scope_is_given(emulator: ImdsEmulator) -> None:
    result = run_cli("--endpoint", emulator.endpoint, "--scope", "https://storage.azure.com/.default")

    assert result.returncode == 0, result.stderr
    assert emulator.token_requests[-1].query["resource"] == "https://storage.azure.com"
    assert json.loads(result.stdout)["resource"] == "https://storage.azure.com"


@pytest.mark.parametrize(
    ("option", "value"),
    [("--client-id", USER.client_id), ("--object-id", USER.object_id), ("--msi-res-id", USER.msi_res_id)],
)
def test_token_sends_the_selector_when_a_user_assigned_identity_is_given(option: str, value: str) -> None:
    with ImdsEmulator(identities=[SYSTEM, USER]) as emulator:
        result = run_cli("--endpoint", emulator.endpoint, option, value)

        assert result.returncode == 0, result.stderr
        assert emulator.token_requests[-1].query[option[2:].replace("-", "_")] == value
        assert json.loads(result.stdout)["clientId"] == USER.client_id
        assert_no_token_on_stderr(result, emulator.issued_tokens())


@pytest.mark.parametrize(
    ("extra", "bypass"),
    [
        ((), None),
        (("--force",), "true"),
        (("--claims", '{"access_token":{"nbf":{"essential":true}}}'), "true"),
    ],
)
def test_token_sends_bypass_cache_when_force_or_claims_is_given(
    emulator: ImdsEmulator, extra: tuple[str, ...], bypass: str | None
) -> None:
    result = run_cli("--endpoint", emulator.endpoint, *extra)

    assert result.returncode == 0, result.stderr
    query = emulator.token_requests[-1].query
    assert query.get("bypass_cache") == bypass
    # Claims are never sent to IMDS.
    assert "claims" not in query


def test_token_uses_the_environment_endpoint_when_no_endpoint_option_is_given(emulator: ImdsEmulator) -> None:
    result = run_cli("-o", "token", env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": emulator.endpoint + "/"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == emulator.issued_tokens()[-1]


def test_token_goes_direct_when_proxy_variables_are_set(emulator: ImdsEmulator) -> None:
    with RecordingProxy() as proxy:
        env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "ALL_PROXY": proxy.url}
        result = run_cli("--endpoint", emulator.endpoint, "-o", "token", env=env)

        assert result.returncode == 0, result.stderr
        assert proxy.recorded == []
    assert len(emulator.token_requests) == 1


# -- failures and exit codes -----------------------------------------------------------------
def test_token_exits_2_with_one_line_when_nothing_listens() -> None:
    result = run_cli("--endpoint", _refused_endpoint(), "-o", "token")

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("azure-imds-token token: ")
    assert "refused" in lines[0]
    assert "Traceback" not in result.stderr


def test_token_prints_a_json_error_object_when_output_is_json_and_it_fails() -> None:
    endpoint = _refused_endpoint()
    result = run_cli("--endpoint", endpoint, "-o", "json")

    assert result.returncode == 2
    assert result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "unavailable"
    assert endpoint in error["message"]
    assert error["attempts"] == 1


def test_token_exits_2_when_the_identity_is_not_found(emulator: ImdsEmulator) -> None:
    result = run_cli("--endpoint", emulator.endpoint, "--client-id", USER.client_id, "-o", "json")

    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["status"] == 400
    assert error["imdsError"] == "invalid_request"
    assert "Identity not found" in error["message"]
    assert_no_token_on_stderr(result, emulator.issued_tokens())


def test_token_exits_1_when_imds_fails_until_the_timeout(emulator: ImdsEmulator) -> None:
    emulator.always(Fault.status(500))

    result = run_cli("--endpoint", emulator.endpoint, "--timeout", "3", "-o", "token")

    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "HTTP 500" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(emulator.token_requests) >= 2


def test_token_json_error_code_is_imds_error_when_imds_keeps_failing(emulator: ImdsEmulator) -> None:
    emulator.always(Fault.status(500))

    result = run_cli("--endpoint", emulator.endpoint, "--timeout", "2")

    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "imds_error"
    assert error["status"] == 500


@pytest.mark.parametrize(
    "args",
    [
        ("--client-id", "a", "--object-id", "b"),
        ("--object-id", "a", "--msi-res-id", "b"),
        ("--resource", "https://a", "--scope", "https://b/.default"),
        ("--timeout", "0"),
        ("--timeout", "soon"),
        ("--output", "yaml"),
        ("--client-id", " "),
        ("--scope", "/.default"),
        ("--resource", "https://x.example/a b"),
        ("--no-such-option",),
        ("token", "extra-positional"),
    ],
)
def test_token_exits_64_when_arguments_are_bad(args: tuple[str, ...]) -> None:
    endpoint = _refused_endpoint()

    result = run_cli(*args, "--endpoint", endpoint, "-o", "token")

    assert result.returncode == 64, result.stderr
    assert "error:" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_token_exits_64_when_the_endpoint_is_not_http() -> None:
    result = run_cli("--endpoint", "ftp://127.0.0.1:21", "-o", "token")

    assert result.returncode == 64
    assert "http://" in result.stderr
    assert len(result.stderr.splitlines()) == 1


# -- --debug -----------------------------------------------------------------------------------
def test_token_debug_logs_attempts_but_not_the_token_when_debug_is_set(emulator: ImdsEmulator) -> None:
    emulator.push(Fault.status(500))

    result = run_cli("--endpoint", emulator.endpoint, "--debug", "-o", "json")

    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr
    assert "HTTP 500" in result.stderr
    assert json.loads(result.stdout)["accessToken"] == emulator.issued_tokens()[-1]
    assert_no_token_on_stderr(result, emulator.issued_tokens())


def test_token_debug_shows_the_traceback_when_it_fails() -> None:
    plain = run_cli("--endpoint", _refused_endpoint(), "-o", "token")
    debug = run_cli("--endpoint", _refused_endpoint(), "-o", "token", "--debug")

    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr
    assert "CredentialUnavailableError" in debug.stderr


# -- retry progress ----------------------------------------------------------------------------
def test_token_shows_retry_progress_when_stderr_is_a_terminal(emulator: ImdsEmulator) -> None:
    emulator.push(Fault.status(410), Fault.status(410))

    result = run_cli_with_tty_stderr("--endpoint", emulator.endpoint, "-o", "token")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == emulator.issued_tokens()[-1]
    assert "waiting for IMDS" in result.stderr
    assert "HTTP 410" in result.stderr
    assert "attempt 2 in " in result.stderr
    assert "attempt 3 in " in result.stderr
    assert "elapsed" in result.stderr
    assert_no_token_on_stderr(result, emulator.issued_tokens())


def test_token_shows_no_progress_when_stderr_is_not_a_terminal(emulator: ImdsEmulator) -> None:
    emulator.push(Fault.status(410), Fault.status(410))

    result = run_cli("--endpoint", emulator.endpoint, "-o", "token")

    assert result.returncode == 0, result.stderr
    assert len(emulator.token_requests) == 3
    assert result.stderr == ""


def test_token_keeps_stderr_quiet_on_a_terminal_when_nothing_is_retried(emulator: ImdsEmulator) -> None:
    result = run_cli_with_tty_stderr("--endpoint", emulator.endpoint, "-o", "token")

    assert result.returncode == 0
    assert result.stderr == ""
