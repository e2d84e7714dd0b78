"""The chain a user builds instead of DefaultAzureCredential: ours first, the developer's Azure
CLI login second, used by a real BlobServiceClient against Azurite.

`az` is a fake on PATH (fake_az.py) that prints an Entra-shaped developer token, so the real
AzureCliCredential runs its real subprocess path. IMDS absent: the chain moves on at once and
the CLI token is the one Azurite accepts. IMDS present: ours, and `az` is never run.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import azure.identity
import azure.identity.aio
import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

from azure_imds_credential import ImdsManagedIdentityCredential
from azure_imds_credential.aio import ImdsManagedIdentityCredential as AsyncImdsManagedIdentityCredential
from azure_imds_credential.testing import ImdsEmulator
from tests.e2e.fakes import install_fake_az, path_with
from tests.helpers.servers import free_port


@pytest.fixture
def az_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake `az` first on PATH; the returned file gets one line per `az` run."""
    log = tmp_path / "az.log"
    monkeypatch.setenv("PATH", path_with(install_fake_az(tmp_path / "bin", log)))
    return log


def _az_calls(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def _round_trip(service: BlobServiceClient) -> None:
    container = service.create_container(f"chain-{uuid.uuid4().hex[:12]}")
    container.upload_blob("hello.txt", b"hello")
    assert container.download_blob("hello.txt").readall() == b"hello"
    container.delete_container()


async def _async_round_trip(service: AsyncBlobServiceClient) -> None:
    container = await service.create_container(f"chain-{uuid.uuid4().hex[:12]}")
    await container.upload_blob("hello.txt", b"hello")
    assert await (await container.download_blob("hello.txt")).readall() == b"hello"
    await container.delete_container()


def _imds_endpoint(present: bool, emulator: ImdsEmulator) -> str:
    return emulator.endpoint if present else f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("imds_present", [False, True], ids=["imds_absent", "imds_present"])
def test_chain_authorizes_blob_client_with_right_credential_when_imds_absent_or_present(
    azurite_url: str, ca_file: str, emulator: ImdsEmulator, az_log: Path, imds_present: bool
) -> None:
    chain = azure.identity.ChainedTokenCredential(
        ImdsManagedIdentityCredential(endpoint=_imds_endpoint(imds_present, emulator)),
        azure.identity.AzureCliCredential(),
    )
    with chain, BlobServiceClient(azurite_url, credential=chain, connection_verify=ca_file) as service:
        _round_trip(service)
    if imds_present:
        assert len(emulator.token_requests) == 1
        assert _az_calls(az_log) == []
    else:
        assert emulator.token_requests == []
        assert _az_calls(az_log) == ["https://storage.azure.com"]


@pytest.mark.parametrize("imds_present", [False, True], ids=["imds_absent", "imds_present"])
async def test_async_chain_authorizes_blob_client_with_right_credential_when_imds_absent_or_present(
    azurite_url: str, ca_file: str, emulator: ImdsEmulator, az_log: Path, imds_present: bool
) -> None:
    chain = azure.identity.aio.ChainedTokenCredential(
        AsyncImdsManagedIdentityCredential(endpoint=_imds_endpoint(imds_present, emulator)),
        azure.identity.aio.AzureCliCredential(),
    )
    async with (
        chain,
        AsyncBlobServiceClient(azurite_url, credential=chain, connection_verify=ca_file) as service,
    ):
        await _async_round_trip(service)
    if imds_present:
        assert len(emulator.token_requests) == 1
        assert _az_calls(az_log) == []
    else:
        assert emulator.token_requests == []
        assert _az_calls(az_log) == ["https://storage.azure.com"]
