"""Read a Key Vault secret with a managed identity.

Shows `ImdsManagedIdentityCredential` with azure-keyvault-secrets' `SecretClient`. Key Vault
clients first send the request without a token; the vault answers 401 with a challenge naming
the resource (`https://vault.azure.net`), and the client then asks the credential for that
audience and retries. The secret's value is never printed, only its length.

On an Azure VM whose identity may read secrets ("Key Vault Secrets User"):

    python samples/keyvault_secret.py --vault-url https://VAULT.vault.azure.net --name my-secret

Key Vault has no emulator. The tests run this sample against a small loopback HTTPS stand-in
that plays the challenge and checks the bearer token's audience, with the IMDS emulator:

    python samples/keyvault_secret.py --emulator --vault-url https://127.0.0.1:8443 \\
        --name my-secret --ca-file ca.pem --no-verify-challenge-resource

`--no-verify-challenge-resource` is only for such a stand-in: the SDK otherwise insists that
the challenge's resource domain matches the vault's host name (a real vault's does).
`--emulator` starts the loopback IMDS emulator for this run; without it the credential uses
AZURE_POD_IDENTITY_AUTHORITY_HOST when set, else IMDS. The vault URL may also come from
AZURE_KEYVAULT_URL.
Needs: pip install azure-imds-credential azure-keyvault-secrets
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from azure.keyvault.secrets import SecretClient

from azure_imds_credential import CredentialUnavailableError, ImdsManagedIdentityCredential


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vault-url", default=os.environ.get("AZURE_KEYVAULT_URL"))
    parser.add_argument("--name", required=True, help="the secret's name")
    parser.add_argument("--ca-file", help="CA bundle to trust (a local stand-in's certificate)")
    parser.add_argument("--no-verify-challenge-resource", action="store_true")
    parser.add_argument("--emulator", action="store_true", help="use a loopback IMDS emulator")
    args = parser.parse_args(argv)
    if not args.vault_url:
        parser.error("--vault-url (or AZURE_KEYVAULT_URL) is required")

    with contextlib.ExitStack() as stack:
        endpoint = None  # AZURE_POD_IDENTITY_AUTHORITY_HOST if set, else http://169.254.169.254
        if args.emulator:
            from azure_imds_credential.testing import ImdsEmulator

            endpoint = stack.enter_context(ImdsEmulator()).endpoint
        credential = stack.enter_context(ImdsManagedIdentityCredential(endpoint=endpoint))
        client = stack.enter_context(
            SecretClient(
                args.vault_url,
                credential,
                connection_verify=args.ca_file or True,
                verify_challenge_resource=not args.no_verify_challenge_resource,
            )
        )
        try:
            secret = client.get_secret(args.name)
        except CredentialUnavailableError as exc:
            print(f"no managed identity here: {exc.message}", file=sys.stderr)
            return 2
        print(f"secret {secret.name}: {len(secret.value or '')} characters (value not shown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
