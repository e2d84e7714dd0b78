"""Async twins of the credential and the low-level client (azure-core's async protocols).

Importing this module loads neither aiohttp nor any transport: they load on first use.
"""

from .._core.token import ImdsToken
from .._errors import CredentialUnavailableError, ImdsError
from ._client import ImdsClient
from ._credential import ImdsManagedIdentityCredential

__all__ = [
    "CredentialUnavailableError",
    "ImdsClient",
    "ImdsError",
    "ImdsManagedIdentityCredential",
    "ImdsToken",
]
