"""`azure-imds-token demo`, run as a real subprocess the way a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Every JWT starts with the base64url of '{"' -- the CLI must never print one.
_JWT_MARK = "eyJ"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # Fixed argv (this interpreter, this package, test-chosen args): nothing untrusted.
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "azure_imds_credential", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_demo_json_reports_storage_audience_without_the_token() -> None:
    result = _run("demo", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["claims"]["aud"] == "https://storage.azure.com"
    assert report["resource"] == "https://storage.azure.com"
    assert report["expires_in_seconds"] > 0
    assert report["endpoint"].startswith("http://127.0.0.1:")
    assert _JWT_MARK not in result.stdout + result.stderr


def test_cli_demo_text_mentions_the_audience_without_the_token() -> None:
    result = _run("demo")

    assert result.returncode == 0, result.stderr
    assert "aud" in result.stdout
    assert "https://storage.azure.com" in result.stdout
    assert _JWT_MARK not in result.stdout + result.stderr


@pytest.mark.parametrize("args", [("no-such-command",), (), ("demo", "--no-such-option")])
def test_cli_exits_64_when_usage_is_wrong(args: tuple[str, ...]) -> None:
    result = _run(*args)

    assert result.returncode == 64
    assert "usage:" in result.stderr
