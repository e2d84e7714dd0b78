"""A stand-in for `az account get-access-token` (run as a script by the fake `az`).

Prints what the Azure CLI prints, with an unsigned developer token for the asked resource or
scope (Azurite accepts it: it checks claims, not signatures), and appends one line per call
to $FAKE_AZ_LOG. Anything else: exit 1, as `az` does for an unknown command.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time

from azure_imds_credential.testing import make_jwt


def developer_jwt(resource: str, *, lifetime: int = 3600, tenant: str = "developer-tenant") -> str:
    """A token shaped like a developer's Entra token (what `az` hands out); Azurite accepts it
    for `https://storage.azure.com`."""
    now = int(time.time())
    return make_jwt(
        {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "oid": "developer",
            "idtyp": "user",
        }
    )


def main(argv: list[str]) -> int:
    if argv[:2] != ["account", "get-access-token"]:
        print(f"fake az: unsupported command {argv!r}", file=sys.stderr)
        return 1
    resource = "https://management.core.windows.net/"
    for flag in ("--resource", "--scope"):
        if flag in argv:
            resource = argv[argv.index(flag) + 1].removesuffix("/.default")
    token = developer_jwt(resource)
    expires_on = int(datetime.datetime.now().timestamp()) + 3600
    log = os.environ.get("FAKE_AZ_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{resource}\n")
    print(
        json.dumps(
            {
                "accessToken": token,
                "expiresOn": datetime.datetime.fromtimestamp(expires_on).strftime("%Y-%m-%d %H:%M:%S.%f"),
                "expires_on": expires_on,
                "subscription": "00000000-0000-0000-0000-000000000000",
                "tenant": "developer-tenant",
                "tokenType": "Bearer",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
