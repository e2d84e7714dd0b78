"""The error hierarchy: every error derives from azure-core's ClientAuthenticationError."""

from __future__ import annotations

import sys
from typing import Any

from azure.core.exceptions import ClientAuthenticationError


class ImdsError(ClientAuthenticationError):
    """IMDS did not give a token.

    Carries what is known: `status` (HTTP status of the last answer, if any), `error_code` and
    `error_description` (IMDS's JSON error, redacted), `attempts`, `elapsed` (seconds) and
    `endpoint`.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error_description: str | None = None,
        attempts: int = 0,
        elapsed: float = 0.0,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message=message)
        self.status = status
        self.status_code = status  # HttpResponseError's attribute name, for azure-core callers
        self.error_code = error_code
        self.error_description = error_description
        self.attempts = attempts
        self.elapsed = elapsed
        self.endpoint = endpoint


class CredentialUnavailableError(ImdsError):
    """IMDS is not here, or has no such identity: a credential chain should move on.

    When azure-identity is in use, the raised instance is also an
    `azure.identity.CredentialUnavailableError`, which is what its `ChainedTokenCredential`
    and `DefaultAzureCredential` need to try the next credential.
    """


_bridges: dict[type[Any], type[CredentialUnavailableError]] = {}


def unavailable_class() -> type[CredentialUnavailableError]:
    """The class to raise for *unavailable*, decided at raise time.

    azure-identity is not a dependency and importing it costs ~100 ms, so we only subclass its
    CredentialUnavailableError when the application has already imported it (chains are built
    from azure.identity, so it is always imported when a chain is in use).
    """
    identity = sys.modules.get("azure.identity")
    base = getattr(identity, "CredentialUnavailableError", None) if identity else None
    if not isinstance(base, type) or issubclass(CredentialUnavailableError, base):
        return CredentialUnavailableError
    bridge = _bridges.get(base)
    if bridge is None:
        bridge = type(
            "CredentialUnavailableError",
            (CredentialUnavailableError, base),
            {"__module__": __name__, "__doc__": CredentialUnavailableError.__doc__},
        )
        _bridges[base] = bridge
    return bridge


def unavailable(message: str, **data: Any) -> CredentialUnavailableError:
    """Build the *unavailable* error (see `unavailable_class`)."""
    return unavailable_class()(message, **data)
