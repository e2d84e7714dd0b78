"""`azure-imds-token emulate`: run the IMDS emulator as a local service (or a real-token dev proxy).

Registered in `_cli._COMMANDS` through `add_emulate`. This module must not import `_cli` at
module level (`_cli` imports it), and it loads the emulator only in the handler, so that
`--help` stays fast.

stdout gets exactly one line, the `export ...` to paste; everything else (banner, one line
per request, warnings) goes to stderr. A token is never printed.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from ._settings import ENDPOINT_ENV  # azure-core free

if TYPE_CHECKING:
    from .testing import Identity, RequestRecord, Step, TokenSource

__all__ = ["add_emulate"]

# The same values as `_cli.EXIT_*` (imported from there would be a cycle).
EXIT_OK = 0
EXIT_FAILURE = 1

# How often the main thread looks up from waiting; signals wake it sooner anyway.
_WAIT_SLICE = 0.5

_SOURCE_SYNTAX = """\
token sources (--token-source):
  fake                    locally minted, unsigned JWTs with Entra-like claims (default)
  azure-cli               your `az login` tokens, via azure-identity's AzureCliCredential
                          (pip install azure-identity): a dev proxy with real tokens
  MODULE:CALLABLE         CALLABLE() returns any azure-core TokenCredential
  Real tokens are fetched for resource + "/.default"; expires_in comes from expires_on."""


def add_emulate(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `emulate` (the parser class, and so exit 64 on usage errors, is `_cli`'s)."""
    from .testing._spec import FAULT_SYNTAX, IDENTITY_SYNTAX

    parser = subparsers.add_parser(
        "emulate",
        help="run a local IMDS emulator (fake or real tokens, scriptable faults)",
        # Raw formatting keeps the syntax tables below aligned, so the lines are broken here.
        description=(
            "Serve IMDS's managed-identity token endpoint on a local port. The first line on\n"
            f"stdout is the `export {ENDPOINT_ENV}=...` that points Azure SDKs\n"
            "(and this library) at it; each request is logged to stderr. Ctrl-C or SIGTERM stops it."
        ),
        epilog=f"{FAULT_SYNTAX}\n\n{IDENTITY_SYNTAX}\n\n{_SOURCE_SYNTAX}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; anything but loopback hands tokens to the network)",
    )
    parser.add_argument("--port", type=_port, default=0, help="port (default 0: any free port)")
    parser.add_argument(
        "--identity",
        action="append",
        type=_identity,
        metavar="SPEC",
        help="an identity of the emulated VM: system | user:NAME[:client_id=..] (repeatable)",
    )
    parser.add_argument(
        "--lifetime", type=_duration, default=3600.0, help="lifetime of minted tokens (default 1h)"
    )
    parser.add_argument(
        "--latency", type=_duration, default=0.0, help="time IMDS takes to answer a token request"
    )
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault,
        metavar="SPEC",
        help="a fault step, e.g. 410:for=16s or 429:retry-after=2:times=3 (repeatable, in order)",
    )
    parser.add_argument(
        "--rate-limit",
        action="store_true",
        help="enforce IMDS's limits (20 requests/s, 5 concurrent) with 429",
    )
    parser.add_argument(
        "--token-source",
        type=_source_spec,
        default="fake",
        metavar="SOURCE",
        help="fake (default) | azure-cli | MODULE:CALLABLE returning a TokenCredential",
    )
    parser.set_defaults(handler=_run_emulate)


# -- argument types (ValueError/ArgumentTypeError -> usage error, exit 64) --------------------
def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return int(text)


def _convert(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _identity(text: str) -> Identity:
    from .testing._spec import parse_identity

    identity: Identity = _convert(parse_identity, text)
    return identity


def _fault(text: str) -> Step:
    from .testing._spec import parse_fault

    step: Step = _convert(parse_fault, text)
    return step


def _duration(text: str) -> float:
    from .testing._spec import parse_duration

    seconds: float = _convert(parse_duration, text)
    if seconds < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return seconds


def _source_spec(text: str) -> str:
    module, sep, attribute = text.partition(":")
    if text in ("fake", "azure-cli") or (sep and module and attribute):
        return text
    raise argparse.ArgumentTypeError(f"not a token source: {text!r} (fake, azure-cli or MODULE:CALLABLE)")


# -- the command -----------------------------------------------------------------------------
class _SourceError(Exception):
    """The token source cannot be set up; the message says what to do."""


def load_token_source(spec: str) -> TokenSource | None:
    """`fake` -> None (mint locally); `azure-cli` or `module:callable` -> a TokenCredential."""
    if spec == "fake":
        return None
    if spec == "azure-cli":
        try:
            # Lazy and optional: azure-identity is not a dependency of this package.
            from azure.identity import AzureCliCredential
        except ImportError as exc:
            raise _SourceError(
                "--token-source azure-cli needs azure-identity: pip install azure-identity"
            ) from exc
        credential: Any = AzureCliCredential()
        return credential  # type: ignore[no-any-return]
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise _SourceError(f"--token-source {spec}: cannot load it ({type(exc).__name__}: {exc})") from exc
    if not callable(factory):
        raise _SourceError(f"--token-source {spec}: {attribute} is not callable")
    source = factory()
    if not callable(getattr(source, "get_token", None)):
        raise _SourceError(f"--token-source {spec}: {attribute}() did not return a TokenCredential")
    return source  # type: ignore[no-any-return]


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: assume it reaches beyond this machine


def _client_host(host: str) -> str:
    # Binding every interface is not an address a client can use: loopback is one of them.
    return "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - compared, not bound


class _RequestLog:
    """One stderr line per request: method, path and query, status, fault, time. No headers
    (a misbehaving client could send a secret), no body (it holds the token)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, record: RequestRecord) -> None:
        query = "&".join(f"{name}={value}" for name, value in record.query.items())
        status = "-" if record.status is None else str(record.status)
        fault = f" [{record.fault}]" if record.fault else ""
        line = (
            f"{time.strftime('%H:%M:%S')} {record.method} {record.path}{'?' if query else ''}{query}"
            f" -> {status}{fault} {record.duration * 1000:.0f} ms"
        )
        self.write(line)

    def write(self, line: str) -> None:
        with self._lock:
            print(line, file=self._stream, flush=True)


def _run_emulate(args: argparse.Namespace) -> int:
    from .testing import Identity, ImdsEmulator

    log = _RequestLog(sys.stderr)
    try:
        source = load_token_source(args.token_source)
    except _SourceError as exc:
        log.write(f"azure-imds-token emulate: {exc}")
        return EXIT_FAILURE
    if not is_loopback(args.host):
        log.write(
            f"warning: binding {args.host!r}, not loopback: anyone who can reach it gets tokens"
            + ("" if source is None else " (REAL tokens from --token-source)")
        )
    identities = args.identity or [Identity.system()]

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before the server starts: a SIGTERM right after the export line must still
    # end in a clean stop, not the default kill.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator = ImdsEmulator(
        host=args.host,
        port=args.port,
        identities=identities,
        lifetime=args.lifetime,
        latency=args.latency,
        rate_limit=args.rate_limit,
        token_source=source,
        on_request=log,
    )
    try:
        try:
            emulator.start()
        except OSError as exc:
            log.write(f"azure-imds-token emulate: cannot listen on {args.host}:{args.port}: {exc}")
            return EXIT_FAILURE
        if args.fault:
            emulator.script(*args.fault)
        endpoint = f"http://{_client_host(args.host)}:{emulator.port}"
        print(f"export {ENDPOINT_ENV}={endpoint}", flush=True)
        _banner(log, endpoint, identities, args, source is not None)
        while not stop.wait(_WAIT_SLICE):
            pass
        log.write("stopping")
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _banner(
    log: _RequestLog, endpoint: str, identities: list[Identity], args: argparse.Namespace, real: bool
) -> None:
    log.write(f"IMDS emulator on {endpoint} (tokens: {args.token_source}); Ctrl-C to stop")
    for identity in identities:
        kind = "system-assigned" if identity.system_assigned else f"user-assigned {identity.msi_res_id}"
        log.write(f"  identity: {kind} client_id={identity.client_id} object_id={identity.object_id}")
    if args.fault:
        log.write(f"  fault script: {len(args.fault)} step(s)")
    if args.rate_limit:
        log.write("  rate limit: 20 requests/s, 5 concurrent (429 beyond)")
    if real:
        log.write("  real tokens are handed out; they are never logged")
