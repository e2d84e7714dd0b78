"""A credential chain: the managed identity on Azure, the developer's Azure CLI login elsewhere.

Shows the list a user builds instead of DefaultAzureCredential:
`ChainedTokenCredential(ImdsManagedIdentityCredential(), AzureCliCredential())`. Off Azure our
credential raises CredentialUnavailableError at once (nothing answers on the IMDS address), so
the chain moves on to `az account get-access-token` without the usual tens of seconds of
waiting. On Azure, IMDS answers and `az` is never run. azure-identity's INFO log line says
which credential produced the token.

    az login                                                     # off Azure
    python samples/chain_with_cli_fallback.py
    python samples/chain_with_cli_fallback.py --account-url https://ACCOUNT.blob.core.windows.net

Against the package's IMDS emulator (then the managed identity wins), and Azurite:

    python samples/chain_with_cli_fallback.py --emulator \\
        --account-url https://127.0.0.1:10000/devstoreaccount1 --ca-file /tmp/tls/client.pem

`--emulator` starts the loopback IMDS emulator for this run; without it the credential uses
AZURE_POD_IDENTITY_AUTHORITY_HOST when set, else IMDS. With `--account-url` (or
AZURE_STORAGE_ACCOUNT_URL) it also lists the account's containers with the chain.
Needs: pip install azure-imds-credential azure-identity azure-storage-blob, and the Azure CLI
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import sys

from azure.core.exceptions import ClientAuthenticationError
from azure.identity import AzureCliCredential, ChainedTokenCredential
from azure.storage.blob import BlobServiceClient

from azure_imds_credential import ImdsManagedIdentityCredential


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scope", default="https://storage.azure.com/.default")
    parser.add_argument("--account-url", default=os.environ.get("AZURE_STORAGE_ACCOUNT_URL"))
    parser.add_argument("--ca-file", help="CA bundle to trust (a local Azurite's certificate)")
    parser.add_argument("--emulator", action="store_true", help="use a loopback IMDS emulator")
    args = parser.parse_args(argv)
    # "ChainedTokenCredential acquired a token from ..." is logged at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("azure.identity._credentials.chained").setLevel(logging.INFO)

    with contextlib.ExitStack() as stack:
        endpoint = None  # AZURE_POD_IDENTITY_AUTHORITY_HOST if set, else http://169.254.169.254
        if args.emulator:
            from azure_imds_credential.testing import ImdsEmulator

            endpoint = stack.enter_context(ImdsEmulator()).endpoint
        chain = stack.enter_context(
            ChainedTokenCredential(ImdsManagedIdentityCredential(endpoint=endpoint), AzureCliCredential())
        )
        try:
            info = chain.get_token_info(args.scope)
        except ClientAuthenticationError:
            # azure-identity has logged (WARNING) what each credential in the chain said.
            print("no credential in the chain could get a token", file=sys.stderr)
            return 2
        expires = datetime.datetime.fromtimestamp(info.expires_on, datetime.timezone.utc)
        print(f"got a token for {args.scope}, expires {expires:%Y-%m-%d %H:%M:%S} UTC")
        if args.account_url:
            service = stack.enter_context(
                BlobServiceClient(args.account_url, credential=chain, connection_verify=args.ca_file or True)
            )
            names = [container.name for container in service.list_containers()]
            print(f"{len(names)} container(s) in {args.account_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
