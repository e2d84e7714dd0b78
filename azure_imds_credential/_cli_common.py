"""What the `azure-imds-token` subcommands share: exit codes, the parser class, common options,
error reporting, logging and the retry progress line.

Light at import time: `--help` and usage errors must stay fast. Beside the standard library
it imports only `_settings` (no azure-core); azure-core and the transports are imported inside
the functions that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ._settings import DEFAULT_ENDPOINT, ENDPOINT_ENV  # azure-core free

if TYPE_CHECKING:
    from ._core.steps import Sleep as RetryNotice
    from ._errors import ImdsError

# Exit codes (64 is EX_USAGE from sysexits.h).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 2
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130

PROG = "azure-imds-token"
DEFAULT_RESOURCE = "https://management.azure.com/"
# Retry progress is shown once a call has been waiting for this long.
PROGRESS_AFTER = 1.0


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with EX_USAGE (64) instead of 2.

    2 is taken: it means "IMDS unavailable".
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """A bad option value found after parsing (reported like argparse does, exit 64)."""


# -- option types and groups -----------------------------------------------------------------
def positive_seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def non_empty(text: str) -> str:
    """argparse type: a value that is not blank."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def add_resource_options(parser: argparse.ArgumentParser) -> None:
    """`--resource` / `--scope` (one of them)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--resource",
        type=non_empty,
        metavar="URI",
        help=f"the resource (audience) to get a token for (default: {DEFAULT_RESOURCE})",
    )
    group.add_argument(
        "--scope",
        type=non_empty,
        metavar="SCOPE",
        help="an Azure SDK scope instead of --resource: https://vault.azure.net/.default "
        "asks for the resource https://vault.azure.net",
    )


def add_identity_options(parser: argparse.ArgumentParser) -> None:
    """`--client-id` / `--object-id` / `--msi-res-id` (at most one: IMDS takes one selector)."""
    group = parser.add_argument_group(
        "identity", "at most one; without any, IMDS uses the system-assigned identity"
    ).add_mutually_exclusive_group()
    group.add_argument(
        "--client-id", type=non_empty, metavar="GUID", help="a user-assigned identity's client id"
    )
    group.add_argument(
        "--object-id", type=non_empty, metavar="GUID", help="a user-assigned identity's object id"
    )
    group.add_argument(
        "--msi-res-id",
        type=non_empty,
        metavar="ARM_ID",
        help="a user-assigned identity's ARM resource id "
        "(/subscriptions/.../providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME)",
    )


def add_connection_options(parser: argparse.ArgumentParser, *, timeout_help: str) -> None:
    """`--endpoint`, `--timeout` and `--debug`."""
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help=f"the IMDS base URL (default: ${ENDPOINT_ENV} when set, else {DEFAULT_ENDPOINT})",
    )
    parser.add_argument("--timeout", type=positive_seconds, metavar="SECONDS", help=timeout_help)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log every attempt (DEBUG) and show tracebacks on stderr; never the token",
    )


def resource_of(args: argparse.Namespace) -> str:
    """The IMDS resource from `--resource` or `--scope` (converted like the credential does)."""
    if args.scope is not None:
        from ._core.request import scopes_to_resource

        try:
            return scopes_to_resource([args.scope])
        except ValueError as exc:
            raise UsageError(f"argument --scope: {exc}") from exc
    resource: str = args.resource if args.resource is not None else DEFAULT_RESOURCE
    return resource


def identity_of(args: argparse.Namespace) -> dict[str, str | None]:
    return {"client_id": args.client_id, "object_id": args.object_id, "msi_res_id": args.msi_res_id}


def describe_identity(args: argparse.Namespace) -> str:
    for name, value in identity_of(args).items():
        if value is not None:
            return f"{name}={value}"
    return "system-assigned"


def resolve_endpoint(args: argparse.Namespace) -> tuple[str, str]:
    """(endpoint, where it came from: "option", "environment" or "default"); validated."""
    from ._settings import resolve_endpoint as resolve

    try:
        endpoint, source = resolve(args.endpoint, "--endpoint")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return endpoint, "option" if source == "argument" else source


# -- logging, progress and errors ------------------------------------------------------------
def setup_logging(debug: bool) -> None:
    """`--debug`: DEBUG records on stderr. The library never logs a token (a test checks)."""
    if debug:
        logging.basicConfig(
            level=logging.DEBUG,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    else:
        # The library's WARNING "giving up" would repeat the error line: keep stderr to one line.
        logging.getLogger("azure_imds_credential").setLevel(logging.ERROR)


def progress_reporter(stream: TextIO | None = None) -> Callable[[RetryNotice], None] | None:
    """An `on_retry` callback that tells a person at a terminal why nothing happens yet.

    None when stderr is not a TTY (scripts and CI logs get no progress noise).
    """
    out = stream or sys.stderr
    try:
        interactive = out.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        return None

    def report(notice: RetryNotice) -> None:
        # Quick retries finish before anyone notices; speak up once the wait passes a second.
        if notice.elapsed + notice.seconds < PROGRESS_AFTER:
            return
        out.write(
            f"{PROG}: waiting for IMDS: attempt {notice.attempt} got {notice.reason}; "
            f"attempt {notice.attempt + 1} in {notice.seconds:.1f} s "
            f"({notice.elapsed:.1f} s elapsed)\n"
        )
        out.flush()

    return report


def error_exit_code(exc: BaseException) -> int:
    from ._errors import CredentialUnavailableError

    return EXIT_UNAVAILABLE if isinstance(exc, CredentialUnavailableError) else EXIT_FAILURE


def error_object(code: str, message: str, exc: ImdsError | None = None) -> dict[str, Any]:
    """`{"error": {"code": ..., "message": ...}}`, plus what an ImdsError knows."""
    body: dict[str, Any] = {"code": code, "message": message}
    if exc is not None:
        body.update(
            status=exc.status,
            imdsError=exc.error_code,
            imdsErrorDescription=exc.error_description,
            attempts=exc.attempts,
            elapsed=exc.elapsed,
            endpoint=exc.endpoint,
        )
    return {"error": body}


def report_error(
    command: str, code: str, message: str, *, as_json: bool, exc: ImdsError | None = None
) -> None:
    """One line on stderr, or the JSON error object on stdout (`--output json`)."""
    if as_json:
        print(json.dumps(error_object(code, message, exc), indent=2))
    else:
        print(f"{PROG} {command}: {message}", file=sys.stderr)


def one_line(text: str) -> str:
    return " ".join(str(text).split())
