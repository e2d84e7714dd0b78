"""The parser as a whole: `--help` of every command, usage errors, and `demo`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ._run import run_cli

# Every JWT starts with the base64url of '{"' -- the demo must never print one.
_JWT_MARK = "eyJ"


def test_cli_help_lists_every_command_when_help_is_asked() -> None:
    result = run_cli("--help")

    assert result.returncode == 0
    for command in ("token", "probe", "demo"):
        assert command in result.stdout
    assert "default" in result.stdout
    assert "64 usage error" in result.stdout


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ("token", ("--output", "--scope", "--force", "--claims", "accessToken", "exit codes")),
        ("probe", ("--json", "--client-id", "proxy", "exit codes")),
        ("demo", ("--json",)),
    ],
)
def test_cli_command_help_explains_its_options_when_help_is_asked(
    command: str, mentions: tuple[str, ...]
) -> None:
    result = run_cli(command, "--help")

    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: azure-imds-token {command}")
    for text in mentions:
        assert text in result.stdout


@pytest.mark.parametrize(
    "args", [("no-such-command",), ("demo", "--no-such-option"), ("probe", "--timeout", "-1")]
)
def test_cli_exits_64_when_usage_is_wrong(args: tuple[str, ...]) -> None:
    result = run_cli(*args)

    assert result.returncode == 64
    assert "usage:" in result.stderr


def test_cli_demo_json_reports_storage_audience_without_the_token() -> None:
    result = run_cli("demo", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["claims"]["aud"] == "https://storage.azure.com"
    assert report["resource"] == "https://storage.azure.com"
    assert report["expires_in_seconds"] > 0
    assert report["endpoint"].startswith("http://127.0.0.1:")
    assert _JWT_MARK not in result.stdout + result.stderr


def test_cli_demo_text_mentions_the_audience_without_the_token() -> None:
    result = run_cli("demo")

    assert result.returncode == 0, result.stderr
    assert "aud" in result.stdout
    assert "https://storage.azure.com" in result.stdout
    assert _JWT_MARK not in result.stdout + result.stderr


def test_cli_module_import_does_not_load_azure_core_when_only_parsing() -> None:
    # `--help` and usage errors stay fast: the package loads its names lazily.
    code = "import sys, azure_imds_credential._cli as c; c.build_parser(); print('azure.core' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
