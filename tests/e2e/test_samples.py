"""Every sample in samples/ runs (subprocess, with a timeout) against the IMDS emulator, and
Azurite or a loopback Key Vault stand-in where it needs a service, so samples never rot.

The emulator runs in this process; the samples find it through
AZURE_POD_IDENTITY_AUTHORITY_HOST, as user code would, and its request log shows what they
asked for.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from azure_imds_credential.testing import Identity, ImdsEmulator, decode_jwt_claims
from tests.e2e.azurite import REPO, Tls
from tests.e2e.fakes import LoopbackHttps, Reply, Seen, install_fake_az, path_with
from tests.helpers.servers import free_port

SAMPLES = REPO / "samples"
TIMEOUT = 120  # a generous bound for a cold interpreter importing the Azure SDK; never reached
TESTED = {
    "storage_blob.py",
    "storage_blob_async.py",
    "keyvault_secret.py",
    "chain_with_cli_fallback.py",
    "user_assigned.py",
}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SECRET_VALUE = "correct horse battery staple"


def _run(sample: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own sample, run with this interpreter
        [sys.executable, str(SAMPLES / sample), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture
def sample_env(emulator: ImdsEmulator) -> dict[str, str]:
    """The environment of a sample run: IMDS is the test's emulator; nothing else leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSI_", "IDENTITY_"))}
    env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = emulator.endpoint
    return env


def _resources(emulator: ImdsEmulator) -> list[str]:
    return [record.query["resource"] for record in emulator.token_requests]


def test_samples_all_have_a_test_and_a_runnable_docstring_when_listed() -> None:
    found = {path.name for path in SAMPLES.glob("*.py")}
    assert found == TESTED, "every sample needs a run in tests/e2e/test_samples.py"
    for name in found:
        docstring = ast.get_docstring(ast.parse((SAMPLES / name).read_text(encoding="utf-8")))
        assert docstring, f"{name} needs a docstring saying what it shows and how to run it"
        assert f"python samples/{name}" in docstring, f"{name}: say how to run it"
        assert "--emulator" in docstring or "emulator" in docstring


@pytest.mark.parametrize("sample", ["storage_blob.py", "storage_blob_async.py"])
def test_storage_sample_round_trips_when_run_against_azurite(
    sample: str,
    azurite_url: str,
    ca_file: str,
    emulator: ImdsEmulator,
    sample_env: dict[str, str],
    tmp_path: Path,
) -> None:
    out = _ok(_run(sample, "--account-url", azurite_url, "--ca-file", ca_file, env=sample_env, cwd=tmp_path))
    assert "same content: True" in out
    assert "deleted container sample-" in out
    assert _resources(emulator) == ["https://storage.azure.com"]


class FakeVault:
    """Key Vault's side of the challenge flow, minimally: 401 with a challenge without a
    token, the secret for a bearer token whose audience is Key Vault, 403 otherwise."""

    def __init__(self) -> None:
        self.url = ""

    def __call__(self, seen: Seen) -> Reply:
        if not seen.path.startswith("/secrets/"):
            return Reply(404, body=b'{"error": {"code": "NotFound", "message": "no such path"}}')
        if seen.token is None:
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                'resource="https://vault.azure.net"'
            )
            return Reply(401, {"WWW-Authenticate": challenge}, b'{"error": {"code": "Unauthorized"}}')
        if decode_jwt_claims(seen.token).get("aud") not in (
            "https://vault.azure.net",
            "https://vault.azure.net/",
        ):
            return Reply(403, body=b'{"error": {"code": "Forbidden", "message": "wrong audience"}}')
        name = seen.path.split("?")[0].split("/")[2]
        body = {
            "value": SECRET_VALUE,
            "id": f"{self.url}/secrets/{name}/0123456789abcdef",
            "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000},
        }
        return Reply(200, body=json.dumps(body).encode())


@pytest.fixture
def vault(tls: Tls) -> Iterator[LoopbackHttps]:
    responder = FakeVault()
    with LoopbackHttps(tls, responder) as server:
        responder.url = server.url
        yield server


def test_keyvault_sample_reads_secret_with_vault_audience_when_challenged(
    vault: LoopbackHttps, ca_file: str, emulator: ImdsEmulator, sample_env: dict[str, str], tmp_path: Path
) -> None:
    args = [
        "--vault-url",
        vault.url,
        "--name",
        "db-password",
        "--ca-file",
        ca_file,
        "--no-verify-challenge-resource",
    ]
    out = _ok(_run("keyvault_secret.py", *args, env=sample_env, cwd=tmp_path))
    assert f"secret db-password: {len(SECRET_VALUE)} characters" in out
    assert SECRET_VALUE not in out
    challenge, authorized = vault.seen
    assert challenge.token is None and challenge.path.startswith("/secrets/db-password")
    assert authorized.token in emulator.issued_tokens()
    assert _resources(emulator) == ["https://vault.azure.net"]


@pytest.mark.parametrize("imds_present", [True, False], ids=["imds_present", "imds_absent"])
def test_chain_sample_uses_right_credential_when_imds_present_or_absent(
    imds_present: bool,
    azurite_url: str,
    ca_file: str,
    emulator: ImdsEmulator,
    sample_env: dict[str, str],
    tmp_path: Path,
) -> None:
    az_log = tmp_path / "az.log"
    sample_env["PATH"] = path_with(install_fake_az(tmp_path / "bin", az_log))
    if not imds_present:
        sample_env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = f"http://127.0.0.1:{free_port()}"
    result = _run(
        "chain_with_cli_fallback.py",
        "--account-url",
        azurite_url,
        "--ca-file",
        ca_file,
        env=sample_env,
        cwd=tmp_path,
    )
    out = _ok(result)
    assert "got a token for https://storage.azure.com/.default" in out
    assert f"container(s) in {azurite_url}" in out  # Azurite accepted the chain's token
    if imds_present:
        assert "acquired a token from ImdsManagedIdentityCredential" in result.stderr
        assert _resources(emulator) == ["https://storage.azure.com"]
        assert not az_log.exists()
    else:
        assert "acquired a token from AzureCliCredential" in result.stderr
        assert emulator.token_requests == []
        # Once for the sample's own get_token_info, once for the blob client (az caches nothing).
        assert az_log.read_text(encoding="utf-8").splitlines() == ["https://storage.azure.com"] * 2


def test_user_assigned_sample_asks_for_that_identity_when_client_id_given(
    azurite_url: str, ca_file: str, sample_env: dict[str, str], tmp_path: Path
) -> None:
    identity = Identity.user_assigned("sample-test")
    with ImdsEmulator(identities=[Identity.system(), identity]) as emulator:
        sample_env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = emulator.endpoint
        args = ["--client-id", identity.client_id, "--account-url", azurite_url, "--ca-file", ca_file]
        out = _ok(_run("user_assigned.py", *args, env=sample_env, cwd=tmp_path))
        assert [r.query.get("client_id") for r in emulator.token_requests] == [identity.client_id]
    assert f"appid: {identity.client_id}" in out
    assert f"xms_mirid: {identity.msi_res_id}" in out
    assert f"container(s) in {azurite_url}" in out


def test_user_assigned_sample_runs_on_its_own_when_given_emulator_flag(
    sample_env: dict[str, str], tmp_path: Path
) -> None:
    del sample_env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
    out = _ok(_run("user_assigned.py", "--emulator", env=sample_env, cwd=tmp_path))
    assert f"appid: {Identity.user_assigned('sample-app').client_id}" in out
