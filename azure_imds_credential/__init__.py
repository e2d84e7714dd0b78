"""Azure managed-identity tokens from the Instance Metadata Service (IMDS).

`ImdsManagedIdentityCredential` is an azure-core `TokenCredential` for Azure SDK clients and
credential chains; `ImdsClient` exposes the whole IMDS token endpoint. Async twins live in
`azure_imds_credential.aio`; a loopback IMDS emulator in `azure_imds_credential.testing`.
"""

from ._client import ImdsClient
from ._clock import Clock
from ._core.request import API_VERSIONS, DEFAULT_API_VERSION, ManagedIdentity, TokenQuery
from ._core.retry import RetryPolicy
from ._core.steps import Sleep as RetryNotice
from ._core.token import ImdsToken
from ._credential import ImdsManagedIdentityCredential
from ._errors import CredentialUnavailableError, ImdsError
from ._settings import DEFAULT_ENDPOINT, ENDPOINT_ENV

__version__ = "0.1.0"

__all__ = [
    "API_VERSIONS",
    "DEFAULT_API_VERSION",
    "DEFAULT_ENDPOINT",
    "ENDPOINT_ENV",
    "Clock",
    "CredentialUnavailableError",
    "ImdsClient",
    "ImdsError",
    "ImdsManagedIdentityCredential",
    "ImdsToken",
    "ManagedIdentity",
    "RetryNotice",
    "RetryPolicy",
    "TokenQuery",
    "__version__",
]
