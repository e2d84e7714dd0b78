"""One worker process of the herd tests: `python -m tests.relay._worker ours|azure-identity`.

It builds its credential (the endpoint comes from AZURE_POD_IDENTITY_AUTHORITY_HOST, pointing
at the relay), prints `ready`, waits for a line on stdin so that every worker asks at the same
moment, then prints a digest of its token (the token itself stays in the process).
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any


def main(kind: str) -> None:
    credential: Any
    if kind == "azure-identity":
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential()
    else:
        from azure_imds_credential import ImdsManagedIdentityCredential

        credential = ImdsManagedIdentityCredential()
    with credential:
        print("ready", flush=True)
        sys.stdin.readline()
        token = credential.get_token("https://storage.azure.com/.default").token
    print(hashlib.sha256(token.encode()).hexdigest(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
