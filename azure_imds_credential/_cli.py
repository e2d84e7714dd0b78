"""`azure-imds-token`: the command-line face of the library.

One function per subcommand registers its parser (`_add_<name>`) and points it at its handler
(`_run_<name>`); `main` only builds the parser from `_COMMANDS` and dispatches. To add a
subcommand, write both functions and append the registrar to `_COMMANDS`.

Heavy imports (azure-core, the emulator) happen inside the handlers, so `--help` and usage
errors stay fast: the subcommand modules (`_cli_token`, `_cli_probe`, ...) import only the
standard library at import time. With no command (or only options), `token` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE", "main"]

from ._cli_common import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from ._cli_emulate import add_emulate
from ._cli_probe import add_probe_command
from ._cli_serve import add_serve_command
from ._cli_token import add_token_command

# The command that runs when none is named: `azure-imds-token --resource X` is `token --resource X`.
DEFAULT_COMMAND = "token"

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
_COMMANDS: tuple[Callable[[argparse._SubParsersAction[_Parser]], None], ...] = (
    add_token_command,
    add_probe_command,
    _add_demo,
    add_emulate,
    add_serve_command,
)


def build_parser() -> _Parser:
    parser = _Parser(
        prog="azure-imds-token",
        description="Azure managed-identity tokens from the Instance Metadata Service (IMDS).",
        epilog=f"Without a COMMAND, `{DEFAULT_COMMAND}` runs (`azure-imds-token --output token`). "
        f"Help on a command: azure-imds-token COMMAND --help. "
        f"Exit codes: {EXIT_OK} ok, {EXIT_FAILURE} failure, {EXIT_UNAVAILABLE} IMDS "
        f"unavailable (not on Azure, no identity), {EXIT_USAGE} usage error.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    args = build_parser().parse_args(_with_default_command(sys.argv[1:] if argv is None else list(argv)))
    handler: Handler = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): exit quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    return code


def _with_default_command(argv: list[str]) -> list[str]:
    """Insert `token` when no command is named: nothing at all, or options first (other than
    the top-level help)."""
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        return [DEFAULT_COMMAND, *argv]
    return argv
