"""Blob storage with a managed identity (sync): create a container, upload, download, list, delete.

Shows `ImdsManagedIdentityCredential` as the `credential=` of azure-storage-blob's
`BlobServiceClient`: the client's bearer-token policy asks it for a
`https://storage.azure.com` token and caches it; the credential fails fast off Azure.

On an Azure VM whose identity has "Storage Blob Data Contributor" on the account:

    python samples/storage_blob.py --account-url https://ACCOUNT.blob.core.windows.net

Off Azure, against the package's IMDS emulator and Azurite (which checks bearer tokens only
with `--oauth basic`, over HTTPS):

    npm ci                                               # Azurite, pinned in package.json
    mkdir -p /tmp/tls && python -m trustme -q -d /tmp/tls   # a throwaway CA + cert
    npx azurite-blob --oauth basic --cert /tmp/tls/server.pem --key /tmp/tls/server.key \\
        --disableTelemetry --skipApiVersionCheck --inMemoryPersistence --blobPort 10000 &
    python samples/storage_blob.py --emulator \\
        --account-url https://127.0.0.1:10000/devstoreaccount1 --ca-file /tmp/tls/client.pem

`--emulator` starts the loopback IMDS emulator for this run. Without it the credential uses
AZURE_POD_IDENTITY_AUTHORITY_HOST when that is set (how the tests point it at an emulator),
else IMDS itself. The account URL may also come from AZURE_STORAGE_ACCOUNT_URL.
Needs: pip install azure-imds-credential azure-storage-blob
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import uuid

from azure.storage.blob import BlobServiceClient

from azure_imds_credential import CredentialUnavailableError, ImdsManagedIdentityCredential


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--account-url", default=os.environ.get("AZURE_STORAGE_ACCOUNT_URL"))
    parser.add_argument("--ca-file", help="CA bundle to trust (a local Azurite's certificate)")
    parser.add_argument("--emulator", action="store_true", help="use a loopback IMDS emulator")
    args = parser.parse_args(argv)
    if not args.account_url:
        parser.error("--account-url (or AZURE_STORAGE_ACCOUNT_URL) is required")

    with contextlib.ExitStack() as stack:
        endpoint = None  # AZURE_POD_IDENTITY_AUTHORITY_HOST if set, else http://169.254.169.254
        if args.emulator:
            from azure_imds_credential.testing import ImdsEmulator

            endpoint = stack.enter_context(ImdsEmulator()).endpoint
        credential = stack.enter_context(ImdsManagedIdentityCredential(endpoint=endpoint))
        verify = args.ca_file or True
        service = stack.enter_context(
            BlobServiceClient(args.account_url, credential=credential, connection_verify=verify)
        )
        try:
            container = service.create_container(f"sample-{uuid.uuid4().hex[:12]}")
        except CredentialUnavailableError as exc:
            print(f"no managed identity here: {exc.message}", file=sys.stderr)
            return 2
        try:
            data = b"hello from a managed identity\n"
            container.upload_blob("hello.txt", data)
            print(f"uploaded {len(data)} bytes to {container.container_name}/hello.txt")
            downloaded = container.download_blob("hello.txt").readall()
            print(f"downloaded {len(downloaded)} bytes, same content: {downloaded == data}")
            print("blobs:", ", ".join(blob.name for blob in container.list_blobs()))
            if downloaded != data:
                return 1
        finally:
            container.delete_container()
            print(f"deleted container {container.container_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
