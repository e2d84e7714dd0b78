"""`azure-imds-token serve` as a user runs it: a subprocess, stopped by SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import subprocess

import pytest

from azure_imds_credential import ImdsManagedIdentityCredential
from azure_imds_credential.testing import ImdsEmulator
from tests.relay.helpers import ROOT, SCOPE, WAIT, env_without_endpoint, get, imds_url, serve, serve_command


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_relays_tokens_and_exits_0_when_signalled(sig: signal.Signals) -> None:
    with ImdsEmulator() as upstream, serve("--endpoint", upstream.endpoint) as served:
        assert served.endpoint == f"http://127.0.0.1:{served.port}"
        with ImdsManagedIdentityCredential(endpoint=served.endpoint) as credential:
            token = credential.get_token(SCOPE).token
        assert get(served.port, "/healthz", headers={}).json()["cache"]["tokens"] == 1
        code, out, err = served.stop(sig)
        issued = upstream.issued_tokens()
    assert code == 0, err
    assert out == ""  # the export line was the only stdout
    assert "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=" in err
    assert "-> 200" in err and "stopping" in err
    assert "Traceback" not in err
    assert issued == [token]
    assert token not in err  # the token never reaches the server's logs


def test_serve_never_logs_token_when_debug_and_errors_happen() -> None:
    with ImdsEmulator() as upstream, serve("--endpoint", upstream.endpoint, "--debug") as served:
        get(served.port, imds_url())
        get(served.port, imds_url(bypass_cache="true"))
        get(served.port, imds_url(client_id="00000000-0000-0000-0000-000000000000"))
        code, _, err = served.stop(signal.SIGTERM)
        issued = upstream.issued_tokens()
    assert code == 0
    assert "-> 400" in err
    assert len(issued) == 2
    for token in issued:
        assert token not in err


@pytest.mark.parametrize(
    "args",
    [
        ("--port", "70000"),
        ("--mcp", "sse"),
        ("--rate-limit", "0"),
        ("--endpoint", "ftp://x"),
        ("--mcp-expose-token",),
    ],
)
def test_serve_exits_64_when_usage_is_wrong(args: tuple[str, ...]) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv
        serve_command(*args),
        cwd=ROOT,
        env=env_without_endpoint(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 64, result.stderr
    assert "error" in result.stderr
    assert result.stdout == ""


def test_serve_warns_when_host_is_not_loopback() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the bind fails, after the warning.
    result = subprocess.run(  # noqa: S603 - fixed argv
        serve_command("--host", "192.0.2.1", "--endpoint", "http://127.0.0.1:9"),
        cwd=ROOT,
        env=env_without_endpoint(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert "warning: binding '192.0.2.1', not loopback" in result.stderr
    assert result.returncode == 1
    assert "cannot serve" in result.stderr
