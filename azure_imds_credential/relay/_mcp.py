"""The relay as an MCP server: one read-only tool, `microsoft-azure-get-identity-oauth2`.

The official MCP Python SDK (`mcp`, the optional extra `azure-imds-credential[mcp]`) is
imported only here, inside the functions: the relay and the CLI work without it.

By default the tool returns what a token *says* (audience, identity, tenant, times, scopes
and roles) and never the token: an agent that only needs to know "which identity am I, can I
reach Key Vault" should not hold a bearer token. `expose_token=True` (the CLI's
`--mcp-expose-token`) adds `access_token`; the tool's description says which mode is on.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._broker import RelayedToken, RelayError, TokenBroker, TokenRequest, token_claims

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["TOOL_NAME", "McpUnavailableError", "build_mcp_server", "token_information"]

TOOL_NAME = "microsoft-azure-get-identity-oauth2"
_DESCRIPTION = (
    "Get an OAuth2 access token for this machine's Azure managed identity from the Azure "
    "Instance Metadata Service (IMDS), through a shared cache. Give `resource` (for example "
    "https://storage.azure.com) or `scope` (https://storage.azure.com/.default), optionally one "
    "of client_id, object_id or msi_res_id for a user-assigned identity, `authority`, and "
    "`bypass_cache` to force a fresh token. Returns the token's audience, identity (oid, "
    "appid), tenant, issued/expiry times and scopes/roles claims. "
)
_WITHOUT_TOKEN = "The token itself is NOT returned: this server was started without --mcp-expose-token."
_WITH_TOKEN = (
    "The raw bearer token IS returned in `access_token` (this server was started with "
    "--mcp-expose-token): treat it as a secret."
)
# Claims worth showing, when the token is a JWT (Entra's access tokens are).
_SHOWN_CLAIMS = ("aud", "iss", "tid", "oid", "sub", "appid", "azp", "idtyp", "xms_mirid", "scp", "roles")


class McpUnavailableError(RuntimeError):
    """The `mcp` package is not installed; the message says how to install it."""


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def token_information(token: RelayedToken, now: float, *, expose_token: bool) -> dict[str, Any]:
    """What the tool returns: facts about the token, and the token only when exposed."""
    claims = token_claims(token.access_token) or {}
    info: dict[str, Any] = {
        "resource": token.resource,
        "token_type": token.token_type,
        "expires_on": _iso(token.expires_on),
        "expires_in_seconds": token.expires_in(now),
    }
    issued = claims.get("iat")
    if isinstance(issued, int):
        info["issued_at"] = _iso(issued)
    if token.client_id is not None:
        info["client_id"] = token.client_id
    shown = {name: claims[name] for name in _SHOWN_CLAIMS if name in claims}
    if shown:
        info["claims"] = shown
    else:
        info["claims"] = None
        info["note"] = "the token is not a JWT: no claims to show"
    if expose_token:
        info["access_token"] = token.access_token
    return info


def _import_mcp() -> Any:
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError as exc:
        raise McpUnavailableError(
            "the MCP server needs the official MCP Python SDK: pip install 'azure-imds-credential[mcp]' "
            f"(or pip install mcp); import failed: {exc}"
        ) from exc
    return MCPServer


def build_mcp_server(
    broker: TokenBroker, *, expose_token: bool = False, now: Callable[[], float] = time.time
) -> MCPServer[Any]:
    """An `MCPServer` with the one tool, backed by `broker`.

    Raises:
        McpUnavailableError: `mcp` is not installed.
    """
    server_class = _import_mcp()
    import anyio.to_thread
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    server: MCPServer[Any] = server_class(
        name="azure-imds-credential",
        instructions="Azure managed-identity tokens for this machine, from IMDS through a shared cache.",
    )

    async def get_identity_oauth2(
        resource: str | None = None,
        scope: str | None = None,
        client_id: str | None = None,
        object_id: str | None = None,
        msi_res_id: str | None = None,
        authority: str | None = None,
        bypass_cache: bool = False,
    ) -> dict[str, Any]:
        try:
            request = TokenRequest.build(
                resource=resource,
                scope=scope,
                client_id=client_id,
                object_id=object_id,
                msi_res_id=msi_res_id,
                authority=authority,
                bypass_cache=bypass_cache,
            )
            # The credential is synchronous (threads wait on its single flight): off the loop.
            token = await anyio.to_thread.run_sync(broker.get, request)
        except RelayError as error:
            # IMDS's error shape, as text: the model sees what IMDS would have said.
            raise ToolError(f"{error.status} {error.code}: {error.description}") from None
        return token_information(token, now(), expose_token=expose_token)

    server.add_tool(
        get_identity_oauth2,
        name=TOOL_NAME,
        title="Azure managed identity: OAuth2 token",
        description=_DESCRIPTION + (_WITH_TOKEN if expose_token else _WITHOUT_TOKEN),
        annotations=ToolAnnotations(
            title="Azure managed identity: OAuth2 token",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
        structured_output=False,
    )
    return server


def run_stdio(server: MCPServer[Any], *, on_ready: Callable[[], None], stopped: Callable[[], bool]) -> None:
    """Serve MCP on stdin/stdout until EOF, SIGINT or SIGTERM.

    The caller installs its own SIGINT/SIGTERM handlers first (a signal before the event loop
    runs must not kill the process); `stopped()` says whether one already arrived. `on_ready`
    runs once the loop's own signal receiver is in place.
    """
    import signal

    import anyio
    from anyio.abc import TaskStatus

    async def main() -> None:
        async with anyio.create_task_group() as group:

            async def stop_on_signal(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    task_status.started()
                    async for _ in signals:
                        group.cancel_scope.cancel()
                        return

            await group.start(stop_on_signal)
            if stopped():
                group.cancel_scope.cancel()
                return
            on_ready()
            await server.run_stdio_async()
            # stdin closed: the client is gone.
            group.cancel_scope.cancel()

    anyio.run(main)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket for the streamable HTTP transport (so port 0 gives a known port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def run_http(server: MCPServer[Any], sock: socket.socket, host: str, on_ready: Callable[[], None]) -> None:
    """Serve MCP's streamable HTTP transport at `/mcp` on `sock` until SIGINT or SIGTERM.

    uvicorn handles both signals itself (a graceful shutdown), then re-raises the one it got:
    the caller must have installed its own handlers so that re-raise does not kill it.
    """
    import anyio
    import uvicorn

    app = server.streamable_http_app(host=host)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    web = uvicorn.Server(config)

    async def main() -> None:
        async with anyio.create_task_group() as group:

            async def announce() -> None:
                while not web.started:
                    if web.should_exit:
                        return
                    await anyio.sleep(0.01)
                on_ready()

            group.start_soon(announce)
            await web.serve(sockets=[sock])
            group.cancel_scope.cancel()

    anyio.run(main)
