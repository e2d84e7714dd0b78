"""azure-storage-blob, sync and async, against Azurite with bearer-token checking on.

Azurite (`--oauth basic`, HTTPS) decodes every bearer token and refuses a wrong audience,
issuer or lifetime with 403 AuthenticationFailed, so a passing round trip proves the
credential's token went through a real Azure SDK pipeline and was accepted; the
wrong-audience control proves that the check is really on.
"""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

from azure_imds_credential import ImdsManagedIdentityCredential
from azure_imds_credential.aio import ImdsManagedIdentityCredential as AsyncImdsManagedIdentityCredential
from azure_imds_credential.testing import ImdsEmulator, decode_jwt_claims
from tests.e2e.fakes import AsyncSpyCredential, AsyncWrongAudience, SpyCredential, WrongAudience

PAYLOAD = uuid.uuid4().bytes * 1000  # 16 kB, different in every run


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _assert_storage_tokens(emulator: ImdsEmulator) -> None:
    """One IMDS request for the storage resource served the whole round trip (cache hits after)."""
    assert [r.query["resource"] for r in emulator.token_requests] == ["https://storage.azure.com"]
    (token,) = emulator.issued_tokens()
    assert decode_jwt_claims(token)["aud"] == "https://storage.azure.com"


def test_blob_client_round_trips_when_using_imds_credential(
    azurite_url: str, ca_file: str, emulator: ImdsEmulator
) -> None:
    container_name, blob_name = _name("sync"), _name("blob")
    with (
        ImdsManagedIdentityCredential(endpoint=emulator.endpoint) as credential,
        BlobServiceClient(azurite_url, credential=credential, connection_verify=ca_file) as service,
    ):
        container = service.create_container(container_name)
        container.upload_blob(blob_name, PAYLOAD)
        assert container.download_blob(blob_name).readall() == PAYLOAD
        assert [blob.name for blob in container.list_blobs()] == [blob_name]
        assert container_name in [c.name for c in service.list_containers()]
        container.delete_blob(blob_name)
        assert list(container.list_blobs()) == []
        service.delete_container(container_name)
        assert container_name not in [c.name for c in service.list_containers()]
    _assert_storage_tokens(emulator)


async def test_async_blob_client_round_trips_when_using_async_imds_credential(
    azurite_url: str, ca_file: str, emulator: ImdsEmulator
) -> None:
    container_name, blob_name = _name("async"), _name("blob")
    async with (
        AsyncImdsManagedIdentityCredential(endpoint=emulator.endpoint) as credential,
        AsyncBlobServiceClient(azurite_url, credential=credential, connection_verify=ca_file) as service,
    ):
        container = await service.create_container(container_name)
        await container.upload_blob(blob_name, PAYLOAD)
        downloader = await container.download_blob(blob_name)
        assert await downloader.readall() == PAYLOAD
        assert [blob.name async for blob in container.list_blobs()] == [blob_name]
        assert container_name in [c.name async for c in service.list_containers()]
        await container.delete_blob(blob_name)
        assert [blob.name async for blob in container.list_blobs()] == []
        await service.delete_container(container_name)
        assert container_name not in [c.name async for c in service.list_containers()]
    _assert_storage_tokens(emulator)


def test_blob_client_is_refused_403_when_token_audience_is_wrong(
    azurite_url: str, ca_file: str, emulator: ImdsEmulator
) -> None:
    with (
        WrongAudience(ImdsManagedIdentityCredential(endpoint=emulator.endpoint)) as credential,
        BlobServiceClient(azurite_url, credential=credential, connection_verify=ca_file) as service,
        pytest.raises(HttpResponseError) as caught,
    ):
        service.create_container(_name("refused"))
    assert caught.value.status_code == 403
    assert getattr(caught.value, "error_code", None) == "AuthenticationFailed"
    # The token Azurite refused was a real emulator token, for Key Vault.
    assert [r.query["resource"] for r in emulator.token_requests] == ["https://vault.azure.net"]


async def test_async_blob_client_is_refused_403_when_token_audience_is_wrong(
    azurite_url: str, ca_file: str, emulator: ImdsEmulator
) -> None:
    async with (
        AsyncWrongAudience(AsyncImdsManagedIdentityCredential(endpoint=emulator.endpoint)) as credential,
        AsyncBlobServiceClient(azurite_url, credential=credential, connection_verify=ca_file) as service,
    ):
        with pytest.raises(HttpResponseError) as caught:
            await service.create_container(_name("refused"))
    assert caught.value.status_code == 403
    assert getattr(caught.value, "error_code", None) == "AuthenticationFailed"
    assert [r.query["resource"] for r in emulator.token_requests] == ["https://vault.azure.net"]


def test_blob_client_uses_get_token_info_when_credential_supports_it(
    azurite_url: str, ca_file: str, emulator: ImdsEmulator
) -> None:
    """azure-core's BearerTokenCredentialPolicy (inside the blob client) prefers the newer
    `get_token_info` protocol, and caches the token across requests."""
    spy = SpyCredential(ImdsManagedIdentityCredential(endpoint=emulator.endpoint))
    with spy, BlobServiceClient(azurite_url, credential=spy, connection_verify=ca_file) as service:
        container = service.create_container(_name("info"))
        container.upload_blob("a", b"a")
        container.delete_container()
    assert spy.calls == [("get_token_info", None)]
    assert len(emulator.token_requests) == 1


async def test_async_blob_client_uses_get_token_info_when_credential_supports_it(
    azurite_url: str, ca_file: str, emulator: ImdsEmulator
) -> None:
    spy = AsyncSpyCredential(AsyncImdsManagedIdentityCredential(endpoint=emulator.endpoint))
    async with spy, AsyncBlobServiceClient(azurite_url, credential=spy, connection_verify=ca_file) as service:
        container = await service.create_container(_name("info"))
        await container.upload_blob("a", b"a")
        await container.delete_container()
    assert spy.calls == [("get_token_info", None)]
    assert len(emulator.token_requests) == 1
