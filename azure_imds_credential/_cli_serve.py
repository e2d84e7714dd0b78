"""`azure-imds-token serve`: a token relay for every process on this VM (or an MCP server).

Registered in `_cli._COMMANDS` through `add_serve_command`. Like `_cli_emulate`, this module
imports only the standard library at import time; the relay (and the optional `mcp` SDK)
load in the handler, so `--help` stays fast.

HTTP relay: stdout gets exactly one line, the `export AZURE_POD_IDENTITY_AUTHORITY_HOST=...`
that points clients at the relay; stderr gets a banner and one line per request. With
`--mcp stdio`, stdout is the MCP protocol and nothing else is written to it. A token is
never printed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from ._cli_common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    positive_seconds,
    resolve_endpoint,
)
from ._settings import DEFAULT_ENDPOINT, ENDPOINT_ENV

__all__ = ["add_serve_command"]

# How often the main thread looks up from waiting; signals wake it sooner anyway.
_WAIT_SLICE = 0.5


def add_serve_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run a token relay for many processes on this VM (or an MCP server)",
        description=(
            "Serve managed-identity tokens on a loopback port from one shared cache: IMDS's own path\n"
            "(/metadata/identity/oauth2/token), /v1/identity/oauth2/token and /healthz. The first line\n"
            f"on stdout is the `export {ENDPOINT_ENV}=...` that points any IMDS client\n"
            "(this library, azure-identity, msal) at the relay. Ctrl-C or SIGTERM stops it.\n"
            "With --mcp, serve the MCP tool microsoft-azure-get-identity-oauth2 instead\n"
            "(needs the optional extra: pip install 'azure-imds-credential[mcp]')."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; anything but loopback hands tokens to the network)",
    )
    parser.add_argument("--port", type=_port, default=0, help="port (default 0: any free port)")
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help=f"the upstream IMDS (default: ${ENDPOINT_ENV} when set, else {DEFAULT_ENDPOINT})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=80.0,
        metavar="SECONDS",
        help="deadline of one upstream acquisition, retries included (default 80)",
    )
    parser.add_argument(
        "--rate-limit",
        type=positive_seconds,
        default=200.0,
        metavar="PER_SECOND",
        help="requests per second the relay answers, all callers together; more get 429 (default 200)",
    )
    parser.add_argument(
        "--mcp",
        choices=("stdio", "http"),
        help="serve the MCP tool instead of the HTTP relay: over stdin/stdout, or streamable HTTP "
        "at http://HOST:PORT/mcp",
    )
    parser.add_argument(
        "--mcp-expose-token",
        action="store_true",
        help="let the MCP tool return the raw access token (by default it returns only what the "
        "token says: audience, identity, tenant, times, scopes and roles)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="log every upstream attempt (DEBUG); never the token"
    )
    parser.set_defaults(handler=_run_serve)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return int(text)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _setup_logging(debug: bool) -> None:
    # stderr only: stdout is the export line (or the MCP protocol).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    package = logging.getLogger("azure_imds_credential")
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if debug else logging.INFO)
    package.propagate = False


class _Signals:
    """SIGINT/SIGTERM set `stop` instead of killing the process; restored on exit."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop.set()

        self._previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *args: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _run_serve(args: argparse.Namespace) -> int:
    prog = "azure-imds-token serve"
    try:
        endpoint, _ = resolve_endpoint(args)
    except UsageError as exc:
        _say(f"{prog}: error: {exc}")
        return EXIT_USAGE
    if args.mcp_expose_token and args.mcp is None:
        _say(f"{prog}: error: --mcp-expose-token needs --mcp")
        return EXIT_USAGE
    _setup_logging(args.debug)

    from .relay import RelayLimits, TokenBroker, is_loopback

    if not is_loopback(args.host):
        _say(f"warning: binding {args.host!r}, not loopback: anyone who can reach it gets tokens")
    broker = TokenBroker(endpoint=endpoint, timeout=args.timeout)
    try:
        if args.mcp is not None:
            return _serve_mcp(args, broker, endpoint)
        limits = RelayLimits(rate=args.rate_limit, burst=max(1, int(args.rate_limit * 2)))
        return _serve_http(args, broker, endpoint, limits)
    finally:
        broker.close()


def _serve_http(args: argparse.Namespace, broker: Any, endpoint: str, limits: Any) -> int:
    from .relay import TokenRelay

    with _Signals() as signals:
        relay = TokenRelay(host=args.host, port=args.port, limits=limits, broker=broker)
        try:
            try:
                relay.start()
            except (OSError, ValueError) as exc:
                _say(f"azure-imds-token serve: cannot serve on {args.host}:{args.port}: {exc}")
                return EXIT_FAILURE
            print(f"export {ENDPOINT_ENV}={relay.endpoint}", flush=True)
            _say(f"IMDS token relay on {relay.endpoint} (upstream {endpoint}); Ctrl-C to stop")
            _say("  paths: /metadata/identity/oauth2/token, /v1/identity/oauth2/token, /healthz")
            _say(f"  rate limit: {args.rate_limit:g} requests/s (429 beyond); tokens are never logged")
            while not signals.stop.wait(_WAIT_SLICE):
                pass
            _say("stopping")
        finally:
            relay.stop()
    return EXIT_OK


def _serve_mcp(args: argparse.Namespace, broker: Any, endpoint: str) -> int:
    from .relay._mcp import McpUnavailableError, bind_socket, build_mcp_server, run_http, run_stdio

    try:
        server = build_mcp_server(broker, expose_token=args.mcp_expose_token)
    except McpUnavailableError as exc:
        _say(f"azure-imds-token serve: {exc}")
        return EXIT_FAILURE
    exposed = "the raw token IS returned (--mcp-expose-token)" if args.mcp_expose_token else "no raw token"
    if args.mcp == "stdio":
        with _Signals() as signals:
            run_stdio(
                server,
                on_ready=lambda: _say(f"MCP server on stdio (upstream {endpoint}; {exposed})"),
                stopped=signals.stop.is_set,
            )
        return EXIT_OK
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        _say(f"azure-imds-token serve: cannot serve on {args.host}:{args.port}: {exc}")
        return EXIT_FAILURE
    host = "127.0.0.1" if args.host in ("", "0.0.0.0") else args.host  # noqa: S104 - compared
    url = f"http://{host}:{sock.getsockname()[1]}/mcp"

    def ready() -> None:
        print(f"MCP {url}", flush=True)
        _say(f"MCP server (streamable HTTP) on {url} (upstream {endpoint}; {exposed}); Ctrl-C to stop")

    # uvicorn stops on SIGINT/SIGTERM and then re-raises the signal: our handlers take it.
    with _Signals(), sock:
        run_http(server, sock, host, ready)
    _say("stopping")
    return EXIT_OK
