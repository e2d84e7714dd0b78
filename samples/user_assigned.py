"""A user-assigned managed identity: pick it by client id, object id or ARM resource id.

Shows `ImdsManagedIdentityCredential(client_id=...)` (or `object_id=` / `msi_res_id=`; at most
one). Without a selector IMDS uses the VM's system-assigned identity. It gets a token and
prints the claims that say which identity it belongs to (decoded without verification, for
display only; the token itself is never printed), then optionally lists blob containers.

On an Azure VM with that identity assigned:

    python samples/user_assigned.py --client-id 00000000-0000-0000-0000-000000000000
    python samples/user_assigned.py --msi-res-id /subscriptions/.../userAssignedIdentities/NAME

Against the package's IMDS emulator (it has one user-assigned identity, picked by default):

    python samples/user_assigned.py --emulator

`--emulator` starts a loopback IMDS emulator with a user-assigned identity for this run;
without it the credential uses AZURE_POD_IDENTITY_AUTHORITY_HOST when set, else IMDS. The
client id may also come from AZURE_CLIENT_ID. With `--account-url` (see
samples/storage_blob.py for Azurite) it also lists the account's containers.
Needs: pip install azure-imds-credential azure-storage-blob
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
from typing import Any

from azure.storage.blob import BlobServiceClient

from azure_imds_credential import CredentialUnavailableError, ImdsManagedIdentityCredential


def unverified_claims(token: str) -> dict[str, Any]:
    """The JWT's payload, for display only: nothing here checks the signature."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    selector = parser.add_mutually_exclusive_group()
    selector.add_argument("--client-id", default=os.environ.get("AZURE_CLIENT_ID"))
    selector.add_argument("--object-id")
    selector.add_argument("--msi-res-id")
    parser.add_argument("--scope", default="https://storage.azure.com/.default")
    parser.add_argument("--account-url", default=os.environ.get("AZURE_STORAGE_ACCOUNT_URL"))
    parser.add_argument("--ca-file", help="CA bundle to trust (a local Azurite's certificate)")
    parser.add_argument("--emulator", action="store_true", help="use a loopback IMDS emulator")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        endpoint = None  # AZURE_POD_IDENTITY_AUTHORITY_HOST if set, else http://169.254.169.254
        client_id = args.client_id
        if args.emulator:
            from azure_imds_credential.testing import Identity, ImdsEmulator

            identity = Identity.user_assigned("sample-app")
            endpoint = stack.enter_context(ImdsEmulator(identities=[identity])).endpoint
            if not (client_id or args.object_id or args.msi_res_id):
                client_id = identity.client_id
        credential = stack.enter_context(
            ImdsManagedIdentityCredential(
                client_id=client_id, object_id=args.object_id, msi_res_id=args.msi_res_id, endpoint=endpoint
            )
        )
        try:
            token = credential.get_token(args.scope)
        except CredentialUnavailableError as exc:
            print(f"no such managed identity here: {exc.message}", file=sys.stderr)
            return 2
        claims = unverified_claims(token.token)
        for name in ("aud", "appid", "oid", "xms_mirid"):
            if name in claims:
                print(f"{name}: {claims[name]}")
        if args.account_url:
            service = stack.enter_context(
                BlobServiceClient(
                    args.account_url, credential=credential, connection_verify=args.ca_file or True
                )
            )
            names = [container.name for container in service.list_containers()]
            print(f"{len(names)} container(s) in {args.account_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
