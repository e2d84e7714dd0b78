"""Blob storage with a managed identity (async): create a container, upload, download, list, delete.

Shows the async credential, `azure_imds_credential.aio.ImdsManagedIdentityCredential`, with
`azure.storage.blob.aio.BlobServiceClient` (aiohttp). Both are closed with `async with`.

On an Azure VM whose identity has "Storage Blob Data Contributor" on the account:

    python samples/storage_blob_async.py --account-url https://ACCOUNT.blob.core.windows.net

Off Azure, against the package's IMDS emulator and Azurite (see samples/storage_blob.py for
starting Azurite with `--oauth basic` over HTTPS):

    python samples/storage_blob_async.py --emulator \\
        --account-url https://127.0.0.1:10000/devstoreaccount1 --ca-file /tmp/tls/client.pem

`--emulator` starts the loopback IMDS emulator for this run. Without it the credential uses
AZURE_POD_IDENTITY_AUTHORITY_HOST when that is set, else IMDS itself. The account URL may
also come from AZURE_STORAGE_ACCOUNT_URL.
Needs: pip install azure-imds-credential[aio] azure-storage-blob
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid

from azure.storage.blob.aio import BlobServiceClient

from azure_imds_credential import CredentialUnavailableError
from azure_imds_credential.aio import ImdsManagedIdentityCredential


async def run(account_url: str, ca_file: str | None, emulator: bool) -> int:
    with contextlib.ExitStack() as stack:
        endpoint = None  # AZURE_POD_IDENTITY_AUTHORITY_HOST if set, else http://169.254.169.254
        if emulator:
            from azure_imds_credential.testing import ImdsEmulator

            endpoint = stack.enter_context(ImdsEmulator()).endpoint
        async with (
            ImdsManagedIdentityCredential(endpoint=endpoint) as credential,
            BlobServiceClient(
                account_url, credential=credential, connection_verify=ca_file or True
            ) as service,
        ):
            try:
                container = await service.create_container(f"sample-{uuid.uuid4().hex[:12]}")
            except CredentialUnavailableError as exc:
                print(f"no managed identity here: {exc.message}", file=sys.stderr)
                return 2
            try:
                data = b"hello from a managed identity (async)\n"
                await container.upload_blob("hello.txt", data)
                print(f"uploaded {len(data)} bytes to {container.container_name}/hello.txt")
                downloaded = await (await container.download_blob("hello.txt")).readall()
                print(f"downloaded {len(downloaded)} bytes, same content: {downloaded == data}")
                print("blobs:", ", ".join([blob.name async for blob in container.list_blobs()]))
                if downloaded != data:
                    return 1
            finally:
                await container.delete_container()
                print(f"deleted container {container.container_name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--account-url", default=os.environ.get("AZURE_STORAGE_ACCOUNT_URL"))
    parser.add_argument("--ca-file", help="CA bundle to trust (a local Azurite's certificate)")
    parser.add_argument("--emulator", action="store_true", help="use a loopback IMDS emulator")
    args = parser.parse_args(argv)
    if not args.account_url:
        parser.error("--account-url (or AZURE_STORAGE_ACCOUNT_URL) is required")
    return asyncio.run(run(args.account_url, args.ca_file, args.emulator))


if __name__ == "__main__":
    sys.exit(main())
