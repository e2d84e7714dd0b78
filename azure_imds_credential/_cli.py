"""`azure-imds-token`: the command-line face of the library.

One function per subcommand registers its parser (`_add_<name>`) and points it at its handler
(`_run_<name>`); `main` only builds the parser from `_COMMANDS` and dispatches. To add a
subcommand, write both functions and append the registrar to `_COMMANDS`.

Heavy imports (azure-core, the emulator) happen inside the handlers, so `--help` and usage
errors stay fast. A token is never printed: only the claims decoded from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE", "main"]

# Exit codes (64 is EX_USAGE from sysexits.h).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 2
EXIT_USAGE = 64

DEMO_SCOPE = "https://storage.azure.com/.default"
# Claims the demo shows, in this order; the time claims are rendered as UTC ISO.
_SHOWN_CLAIMS = ("aud", "iss", "oid", "tid", "appid", "iat", "nbf", "exp")
_TIME_CLAIMS = frozenset({"iat", "nbf", "exp"})

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with EX_USAGE (64) instead of 2.

    2 is taken: it means "IMDS unavailable".
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# -- demo ------------------------------------------------------------------------------------
def _add_demo(subparsers: argparse._SubParsersAction[_Parser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="get a token from a local IMDS emulator and show what is inside it",
        description=(
            "Start a loopback IMDS emulator, get a token for Azure Storage through "
            "ImdsManagedIdentityCredential and print its expiry and decoded claims "
            "(never the token itself). Needs no Azure."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import time

    from ._core.request import scopes_to_resource
    from ._credential import ImdsManagedIdentityCredential
    from .testing import ImdsEmulator, decode_jwt_claims

    with ImdsEmulator(host="127.0.0.1", port=0) as emulator:
        endpoint = emulator.endpoint
        with ImdsManagedIdentityCredential(endpoint=endpoint) as credential:
            info = credential.get_token_info(DEMO_SCOPE)
    now = time.time()
    claims = decode_jwt_claims(info.token)
    report: dict[str, Any] = {
        "endpoint": endpoint,
        "scope": DEMO_SCOPE,
        "resource": scopes_to_resource([DEMO_SCOPE]),
        "token_type": info.token_type,
        "expires_on": _iso(info.expires_on),
        "expires_in_seconds": int(info.expires_on - now),
        "refresh_on": None if info.refresh_on is None else _iso(info.refresh_on),
        "claims": {
            name: (_iso(claims[name]) if name in _TIME_CLAIMS else claims[name])
            for name in _SHOWN_CLAIMS
            if name in claims
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_format_demo(report))
    return EXIT_OK


def _format_demo(report: dict[str, Any]) -> str:
    refresh = report["refresh_on"] or "(not set)"
    lines = [
        "azure-imds-token demo: a token from a local IMDS emulator (no Azure involved)",
        f"  emulator endpoint : {report['endpoint']}",
        f"  scope             : {report['scope']}",
        f"  resource          : {report['resource']}",
        f"  token type        : {report['token_type']}",
        f"  expires_on        : {report['expires_on']} ({report['expires_in_seconds']} s left)",
        f"  refresh_on        : {refresh}",
        "  claims (decoded, unverified; the token itself is never printed):",
    ]
    lines += [f"    {name:<5} : {value}" for name, value in report["claims"].items()]
    return "\n".join(lines)


def _iso(epoch: Any) -> str:
    """Seconds since the epoch (int, float or numeric str) -> `2024-01-01T00:00:00Z`."""
    moment = datetime.fromtimestamp(float(epoch), tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the parser ------------------------------------------------------------------------------
# Each registrar adds one subcommand; add new ones here (token, probe, emulate, ...).
_COMMANDS: tuple[Callable[[argparse._SubParsersAction[_Parser]], None], ...] = (_add_demo,)


def build_parser() -> _Parser:
    parser = _Parser(
        prog="azure-imds-token",
        description="Azure managed-identity tokens from the Instance Metadata Service (IMDS).",
        epilog=f"exit codes: {EXIT_OK} ok, {EXIT_FAILURE} failure, {EXIT_UNAVAILABLE} IMDS "
        f"unavailable, {EXIT_USAGE} usage error",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)
