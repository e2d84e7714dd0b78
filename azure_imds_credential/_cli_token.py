"""`azure-imds-token token`: get a managed-identity token and print it, or what is inside it.

The token reaches stdout only with `--output token`, `json` or `env`; never stderr, never a
log line (`--output claims` prints the decoded header and claims, not the token).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import shlex
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._cli_common import (
    DEFAULT_RESOURCE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    add_connection_options,
    add_identity_options,
    add_resource_options,
    error_exit_code,
    non_empty,
    one_line,
    progress_reporter,
    report_error,
    resolve_endpoint,
    resource_of,
    setup_logging,
)
from ._settings import ENDPOINT_ENV

if TYPE_CHECKING:
    from ._core.token import ImdsToken

OUTPUTS = ("json", "token", "env", "claims")
# Names of the `--output env` variables.
ENV_TOKEN = "AZURE_ACCESS_TOKEN"
ENV_TYPE = "AZURE_ACCESS_TOKEN_TYPE"
ENV_EXPIRES_ON = "AZURE_ACCESS_TOKEN_EXPIRES_ON"
ENV_RESOURCE = "AZURE_ACCESS_TOKEN_RESOURCE"
# JWT claims holding seconds since the epoch (rendered as UTC ISO dates).
_TIME_CLAIMS = frozenset({"iat", "nbf", "exp", "auth_time", "xms_tcdt"})

_DESCRIPTION = """\
Ask IMDS for a managed-identity access token and print it. This is the default command:
`azure-imds-token --resource https://vault.azure.net` is `azure-imds-token token ...`.

Output formats (--output):
  json    the keys `az account get-access-token` prints (accessToken, expiresOn,
          expires_on, tenant, tokenType) plus resource and clientId
  token   the bare token, for TOKEN=$(azure-imds-token --output token)
  env     export lines, for eval "$(azure-imds-token --output env)"
  claims  the decoded JWT header and claims (not the token), times as UTC ISO dates"""

_EPILOG = f"""\
examples:
  {PROG} --scope https://storage.azure.com/.default --output claims
  {PROG} token --client-id 00000000-0000-0000-0000-000000000000 --output token
  curl -H "Authorization: Bearer $({PROG} -o token)" https://management.azure.com/...

exit codes: 0 ok, 1 failure (IMDS kept failing), 2 unavailable (not on Azure, or no such
identity), 64 usage error. Retry progress is shown on stderr when it is a terminal."""


def add_token_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `token` (the default command)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "token",
        help="get a managed-identity token (the default command)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_resource_options(parser)
    add_identity_options(parser)
    fresh = parser.add_argument_group("freshness")
    fresh.add_argument(
        "--force",
        action="store_true",
        help="ask IMDS for a fresh token instead of its cached one (bypass_cache=true)",
    )
    fresh.add_argument(
        "--claims",
        type=non_empty,
        metavar="CHALLENGE",
        help="a claims challenge from a resource (CAE). IMDS takes no claims, so it is not "
        "sent; it implies --force so that IMDS fetches a new token",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="json",
        help="what to print (default: json)",
    )
    add_connection_options(
        parser,
        timeout_help="give up after this many seconds, retries included (default: 80, "
        "which outlasts IMDS's up to 70 s of 410 while it updates)",
    )
    parser.set_defaults(handler=run_token)


def run_token(args: argparse.Namespace) -> int:
    setup_logging(args.debug)
    as_json = args.output == "json"
    try:
        return _token(args)
    except UsageError as exc:
        if as_json:
            report_error("token", "usage", str(exc), as_json=True)
        else:
            print(f"{PROG} token: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} token: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from ._errors import ImdsError

        if args.debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        if isinstance(exc, ImdsError):
            code = "unavailable" if error_exit_code(exc) != EXIT_FAILURE else "imds_error"
            report_error("token", code, one_line(exc.message), as_json=as_json, exc=exc)
            return error_exit_code(exc)
        # A bug or an environment problem: say what it was; the traceback needs --debug.
        message = f"unexpected {type(exc).__name__}: {one_line(str(exc))}"
        if not args.debug:
            message += " (run with --debug for the traceback)"
        report_error("token", "internal_error", message, as_json=as_json)
        return EXIT_FAILURE


def _token(args: argparse.Namespace) -> int:
    resource = resource_of(args)
    endpoint, _source = resolve_endpoint(args)
    from ._client import ImdsClient

    # A claims challenge cannot be sent to IMDS; a fresh token is what answers it.
    bypass = bool(args.force or args.claims)
    try:
        client = ImdsClient(
            endpoint=endpoint,
            timeout=args.timeout if args.timeout is not None else 80.0,
            on_retry=progress_reporter(),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    with client:
        try:
            answer = client.get_token(
                resource,
                client_id=args.client_id,
                object_id=args.object_id,
                msi_res_id=args.msi_res_id,
                bypass_cache=bypass,
            )
        except (ValueError, TypeError) as exc:
            raise UsageError(str(exc)) from exc
    return _OUTPUT[args.output](answer, resource)


# -- output formats --------------------------------------------------------------------------
def az_json(answer: ImdsToken, resource: str) -> dict[str, Any]:
    """The keys of `az account get-access-token` (minus `subscription`: IMDS knows none).

    `expiresOn` is local time like az's ("YYYY-MM-DD HH:MM:SS.ffffff"); `expires_on` is
    epoch seconds. Both come from `expires_in` on the local clock (immune to clock skew).
    `tenant` is the token's `tid` claim (null when the token is not a JWT).
    """
    expires_on = answer.local_expires_on
    try:
        tenant = decode_jwt(answer.access_token)[1].get("tid")
    except ValueError:
        tenant = None
    return {
        "accessToken": answer.access_token,
        "expiresOn": datetime.fromtimestamp(expires_on).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "expires_on": expires_on,
        "tenant": tenant if isinstance(tenant, str) else None,
        "tokenType": answer.token_type,
        "resource": answer.resource or resource,
        "clientId": answer.client_id,
    }


def _print_json(answer: ImdsToken, resource: str) -> int:
    print(json.dumps(az_json(answer, resource), indent=2))
    return EXIT_OK


def _print_token(answer: ImdsToken, resource: str) -> int:
    print(answer.access_token)
    return EXIT_OK


def _print_env(answer: ImdsToken, resource: str) -> int:
    values = {
        ENV_TOKEN: answer.access_token,
        ENV_TYPE: answer.token_type,
        ENV_EXPIRES_ON: str(answer.local_expires_on),
        ENV_RESOURCE: answer.resource or resource,
    }
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")
    return EXIT_OK


def _print_claims(answer: ImdsToken, resource: str) -> int:
    try:
        header, claims = decode_jwt(answer.access_token)
    except ValueError as exc:
        print(f"{PROG} token: cannot show claims: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(claims_report(header, claims, answer, time.time()), indent=2))
    return EXIT_OK


_OUTPUT: dict[str, Callable[[ImdsToken, str], int]] = {
    "json": _print_json,
    "token": _print_token,
    "env": _print_env,
    "claims": _print_claims,
}


def claims_report(
    header: dict[str, Any], claims: dict[str, Any], answer: ImdsToken, now: float
) -> dict[str, Any]:
    """Header and claims with time claims as UTC ISO dates, plus the remaining lifetime."""
    shown = {
        name: iso_utc(value) if name in _TIME_CLAIMS and _is_number(value) else value
        for name, value in claims.items()
    }
    remaining = max(0, int(answer.local_expires_on - now))
    return {
        "header": header,
        "claims": shown,
        "expiresOn": iso_utc(answer.local_expires_on),
        "expiresInSeconds": remaining,
        "expiresIn": human_duration(remaining),
        "resource": answer.resource,
        "clientId": answer.client_id,
    }


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, claims) of a JWT, unverified. The signature is not returned.

    Raises ValueError with a message that never repeats the token.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("the token is not a JWT (expected three dot-separated parts)")
    decoded: list[dict[str, Any]] = []
    for what, part in (("header", parts[0]), ("claims", parts[1])):
        try:
            value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
            raise ValueError(f"the token's {what} is not base64url JSON") from None
        if not isinstance(value, dict):
            raise ValueError(f"the token's {what} is not a JSON object")
        decoded.append(value)
    return decoded[0], decoded[1]


def iso_utc(epoch: float) -> str:
    """Seconds since the epoch -> `2024-01-01T00:00:00Z`."""
    moment = datetime.fromtimestamp(float(epoch), tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def human_duration(seconds: int) -> str:
    """3599 -> `59m 59s`; 7260 -> `2h 01m 00s`."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = ["DEFAULT_RESOURCE", "ENDPOINT_ENV", "OUTPUTS", "add_token_command", "run_token"]
