"""Building IMDS token requests: identities, query parameters, scopes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

TOKEN_PATH = "/metadata/identity/oauth2/token"
# Every public client sends 2018-02-01; the OpenAPI spec also allows the two later ones.
DEFAULT_API_VERSION = "2018-02-01"
API_VERSIONS = ("2018-02-01", "2018-04-02", "2018-10-01")
# IMDS's SSRF guard: requests without this exact header get 400.
METADATA_HEADERS: dict[str, str] = {"Metadata": "true"}


def _check_optional_str(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty; leave it out to use the system-assigned identity")


@dataclass(frozen=True, slots=True)
class ManagedIdentity:
    """Which identity to ask IMDS for: system-assigned (all None) or one user-assigned selector."""

    client_id: str | None = None
    object_id: str | None = None
    msi_res_id: str | None = None

    def __post_init__(self) -> None:
        given = []
        for name in ("client_id", "object_id", "msi_res_id"):
            value = getattr(self, name)
            _check_optional_str(name, value)
            if value is not None:
                given.append(name)
        if len(given) > 1:
            raise ValueError(
                f"pass at most one of client_id, object_id, msi_res_id (got {', '.join(given)}): "
                "IMDS selects a user-assigned identity by exactly one of them"
            )

    @property
    def selector(self) -> tuple[str, str] | None:
        """The (query name, value) pair that selects this identity, None for system-assigned."""
        if self.client_id is not None:
            return ("client_id", self.client_id)
        if self.object_id is not None:
            return ("object_id", self.object_id)
        if self.msi_res_id is not None:
            return ("msi_res_id", self.msi_res_id)
        return None

    def describe(self) -> str:
        """A short description for messages (identity selectors are not secrets)."""
        selector = self.selector
        return "system-assigned identity" if selector is None else f"identity {selector[0]}={selector[1]}"


@dataclass(frozen=True, slots=True)
class TokenQuery:
    """Every parameter of the IMDS token endpoint."""

    resource: str
    identity: ManagedIdentity = ManagedIdentity()
    authority: str | None = None
    bypass_cache: bool = False
    api_version: str = DEFAULT_API_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.resource, str):
            raise TypeError(f"resource must be a str, not {type(self.resource).__name__}")
        if not self.resource.strip() or any(c.isspace() for c in self.resource):
            raise ValueError(f"resource must be a non-empty URI without spaces, got {self.resource!r}")
        _check_optional_str("authority", self.authority)
        if not isinstance(self.bypass_cache, bool):
            raise TypeError("bypass_cache must be a bool")
        if self.api_version not in API_VERSIONS:
            raise ValueError(
                f"api_version {self.api_version!r} is not one IMDS accepts; use one of {API_VERSIONS}"
            )

    def params(self) -> list[tuple[str, str]]:
        """Query parameters in a stable order."""
        params = [("api-version", self.api_version), ("resource", self.resource)]
        selector = self.identity.selector
        if selector is not None:
            params.append(selector)
        if self.authority is not None:
            params.append(("authority", self.authority))
        if self.bypass_cache:
            params.append(("bypass_cache", "true"))
        return params


def token_url(endpoint: str, query: TokenQuery) -> str:
    """The full request URL; `endpoint` is already validated (scheme://host[:port][/prefix])."""
    return f"{endpoint}{TOKEN_PATH}?{urlencode(query.params())}"


def scopes_to_resource(scopes: Sequence[str]) -> str:
    """Turn azure-core scopes into the one IMDS resource: `https://x/.default` -> `https://x`.

    IMDS takes exactly one resource per request, so exactly one scope is accepted.
    """
    if len(scopes) != 1:
        raise ValueError(
            f"IMDS issues a token for exactly one resource; pass one scope, got {len(scopes)}"
            + (f": {list(scopes)!r}" if scopes else "")
        )
    scope = scopes[0]
    if not isinstance(scope, str):
        raise TypeError(f"scope must be a str, not {type(scope).__name__}")
    resource = scope[: -len("/.default")] if scope.endswith("/.default") else scope
    if not resource.strip():
        raise ValueError(f"scope {scope!r} names no resource")
    return resource
