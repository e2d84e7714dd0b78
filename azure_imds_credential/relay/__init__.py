"""A token relay: one managed-identity token cache for every process on a VM.

`TokenRelay` is a loopback HTTP server that answers on IMDS's own path (so any client uses it
through `AZURE_POD_IDENTITY_AUTHORITY_HOST`), on `/v1/identity/oauth2/token` and on
`/healthz`. Its tokens come from IMDS through `ImdsManagedIdentityCredential`, one per
identity, so a burst of requests from many workers reaches IMDS once. `build_mcp_server`
offers the same tokens as an MCP tool (needs the optional `mcp` extra).

    with TokenRelay() as relay:                 # upstream: the real IMDS
        print(relay.endpoint)                   # point workers' AZURE_POD_IDENTITY_AUTHORITY_HOST here
"""

from ._broker import RelayedToken, RelayError, TokenBroker, TokenRequest, token_claims
from ._mcp import TOOL_NAME, McpUnavailableError, build_mcp_server, token_information
from ._relay import RelayLimits, TokenRelay, is_loopback

__all__ = [
    "TOOL_NAME",
    "McpUnavailableError",
    "RelayError",
    "RelayLimits",
    "RelayedToken",
    "TokenBroker",
    "TokenRelay",
    "TokenRequest",
    "build_mcp_server",
    "is_loopback",
    "token_claims",
    "token_information",
]
