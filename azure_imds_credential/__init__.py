"""Azure managed-identity tokens from the Instance Metadata Service (IMDS).

`ImdsManagedIdentityCredential` is an azure-core `TokenCredential` for Azure SDK clients and
credential chains; `ImdsClient` exposes the whole IMDS token endpoint. Async twins live in
`azure_imds_credential.aio`; a loopback IMDS emulator in `azure_imds_credential.testing`.

The names below load on first use: importing a submodule (the pytest plugin, the command
line's `--help`) must not pay for azure-core, which the credential needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for type checkers (re-exported explicitly)
    from ._client import ImdsClient as ImdsClient
    from ._clock import Clock as Clock
    from ._core.request import API_VERSIONS as API_VERSIONS
    from ._core.request import DEFAULT_API_VERSION as DEFAULT_API_VERSION
    from ._core.request import ManagedIdentity as ManagedIdentity
    from ._core.request import TokenQuery as TokenQuery
    from ._core.retry import RetryPolicy as RetryPolicy
    from ._core.steps import Sleep as RetryNotice  # noqa: F401 - re-exported under this name
    from ._core.token import ImdsToken as ImdsToken
    from ._credential import ImdsManagedIdentityCredential as ImdsManagedIdentityCredential
    from ._errors import CredentialUnavailableError as CredentialUnavailableError
    from ._errors import ImdsError as ImdsError
    from ._settings import DEFAULT_ENDPOINT as DEFAULT_ENDPOINT
    from ._settings import ENDPOINT_ENV as ENDPOINT_ENV

__version__ = "0.1.0"

# Public name -> (module, name in that module).
_EXPORTS: dict[str, tuple[str, str]] = {
    "API_VERSIONS": ("._core.request", "API_VERSIONS"),
    "DEFAULT_API_VERSION": ("._core.request", "DEFAULT_API_VERSION"),
    "DEFAULT_ENDPOINT": ("._settings", "DEFAULT_ENDPOINT"),
    "ENDPOINT_ENV": ("._settings", "ENDPOINT_ENV"),
    "Clock": ("._clock", "Clock"),
    "CredentialUnavailableError": ("._errors", "CredentialUnavailableError"),
    "ImdsClient": ("._client", "ImdsClient"),
    "ImdsError": ("._errors", "ImdsError"),
    "ImdsManagedIdentityCredential": ("._credential", "ImdsManagedIdentityCredential"),
    "ImdsToken": ("._core.token", "ImdsToken"),
    "ManagedIdentity": ("._core.request", "ManagedIdentity"),
    "RetryNotice": ("._core.steps", "Sleep"),
    "RetryPolicy": ("._core.retry", "RetryPolicy"),
    "TokenQuery": ("._core.request", "TokenQuery"),
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
