"""`azure-imds-token probe`: a doctor for managed identity on this host.

It checks, with short timeouts and in this order: where the endpoint comes from, which proxy
variables are set, whether a TCP connection opens, whether a request *without* the Metadata
header gets IMDS's answer (real IMDS answers it at once: 400 with `Server: IMDS/...` and a
JSON error), and whether IMDS gives a token for the identity asked for. Each problem found
comes with what to do about it. The token itself is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._cli_common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    PROG,
    UsageError,
    add_connection_options,
    add_identity_options,
    add_resource_options,
    describe_identity,
    one_line,
    progress_reporter,
    resolve_endpoint,
    resource_of,
    setup_logging,
)
from ._settings import DEFAULT_ENDPOINT, ENDPOINT_ENV

# IMDS is link-local: a connect that takes longer than this means dropped packets.
CONNECT_TIMEOUT = 1.0
# Real IMDS answers a request without the Metadata header at once (400).
ANSWER_TIMEOUT = 2.0
# The token check: long enough for a slow Entra round trip, short for a doctor.
DEFAULT_TOKEN_TIMEOUT = 10.0
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

_DESCRIPTION = """\
Diagnose managed identity on this host: is IMDS reachable (connect and answer times), is
what answers really IMDS (Server: IMDS/... header, JSON error shape), which proxy variables
are set (this tool and the library bypass them for IMDS), whether
AZURE_POD_IDENTITY_AUTHORITY_HOST overrides the endpoint, and whether the system-assigned
(or the given) identity gives a token. Every problem found comes with a fix."""

_EPILOG = f"""\
examples:
  {PROG} probe
  {PROG} probe --client-id 00000000-0000-0000-0000-000000000000 --json

exit codes: 0 IMDS gives a token for the identity, 1 IMDS is there but failing, 2 IMDS
unavailable or no such identity, 64 usage error."""


@dataclass
class Finding:
    severity: str  # "error", "warning" or "info"
    problem: str
    fix: str


@dataclass
class Report:
    endpoint: dict[str, Any]
    proxy: dict[str, Any]
    connect: dict[str, Any] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    verdict: str = "ok"
    exit_code: int = EXIT_OK

    def add(self, severity: str, problem: str, fix: str) -> None:
        self.findings.append(Finding(severity, problem, fix))


def add_probe_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `probe`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "probe",
        help="diagnose IMDS reachability, proxies and identities, with fixes",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_resource_options(parser)
    add_identity_options(parser)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_connection_options(
        parser,
        timeout_help=f"seconds the token check may take, retries included (default: "
        f"{DEFAULT_TOKEN_TIMEOUT:g}); connect and presence checks take at most "
        f"{CONNECT_TIMEOUT:g} s and {ANSWER_TIMEOUT:g} s",
    )
    parser.set_defaults(handler=run_probe)


def run_probe(args: argparse.Namespace) -> int:
    setup_logging(args.debug)
    try:
        report = probe(args)
    except UsageError as exc:
        print(f"{PROG} probe: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} probe: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        hint = "" if args.debug else " (run with --debug for the traceback)"
        print(f"{PROG} probe: unexpected {type(exc).__name__}: {one_line(str(exc))}{hint}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(report_dict(report), indent=2))
    else:
        print(format_report(report))
    return report.exit_code


def report_dict(report: Report) -> dict[str, Any]:
    return asdict(report)


# -- the checks ------------------------------------------------------------------------------
def probe(args: argparse.Namespace) -> Report:
    endpoint, source = resolve_endpoint(args)
    resource = resource_of(args)
    env_value = os.environ.get(ENDPOINT_ENV, "").strip() or None
    report = Report(
        endpoint={"url": endpoint, "source": source, "environment_override": env_value},
        proxy=_proxy_check(endpoint),
    )
    _endpoint_findings(report, source, env_value)
    report.connect = _connect_check(endpoint)
    if report.connect["ok"]:
        report.answer = _answer_check(endpoint, resource)
    else:
        report.answer = {"ok": False, "skipped": "no connection"}
    if report.answer.get("status") is not None:
        report.identity = _identity_check(args, endpoint, resource)
    else:
        report.identity = {
            "requested": describe_identity(args),
            "resource": resource,
            "result": "skipped",
            "reason": "IMDS did not answer",
        }
    _diagnose(report, args)
    return report


def _proxy_check(endpoint: str) -> dict[str, Any]:
    found: dict[str, str] = {}
    for name in PROXY_VARIABLES:
        for spelled in (name, name.lower()):
            value = os.environ.get(spelled)
            if value:
                found[spelled] = _hide_userinfo(value) if name != "NO_PROXY" else value
    host = urlsplit(endpoint).hostname or ""
    proxies_set = any(name.upper() != "NO_PROXY" for name in found)
    return {
        "variables": found,
        # The library's default transport ignores proxy settings (requests with
        # use_env_settings=False) and this probe connects directly.
        "bypassed": True,
        "no_proxy_covers_endpoint": _no_proxy_covers(host) if proxies_set else None,
    }


def _hide_userinfo(value: str) -> str:
    """A proxy URL without its user:password (proxy credentials are secrets)."""
    parts = urlsplit(value if "://" in value else f"http://{value}")
    if parts.username is None and parts.password is None:
        return value
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=f"***@{netloc}").geturl()


def _no_proxy_covers(host: str) -> bool:
    raw = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    for entry in (item.strip().lower() for item in raw.split(",")):
        if not entry:
            continue
        if entry == "*" or entry == host.lower():
            return True
        if entry.startswith(".") and host.lower().endswith(entry):
            return True
        if "/" in entry:
            import ipaddress

            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _host_port(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _connect_check(endpoint: str) -> dict[str, Any]:
    """Open (and close) one TCP connection: refused, dropped, or open, and how fast."""
    host, port = _host_port(endpoint)
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except ConnectionRefusedError:
        return {"ok": False, "error": "refused", "ms": _ms(time.monotonic() - started)}
    except TimeoutError:
        return {"ok": False, "error": "timeout", "ms": _ms(time.monotonic() - started)}
    except socket.gaierror as exc:
        return {"ok": False, "error": "unresolved", "detail": str(exc), "ms": None}
    except OSError as exc:
        return {"ok": False, "error": "unreachable", "detail": one_line(str(exc)), "ms": None}
    return {"ok": True, "error": None, "ms": _ms(time.monotonic() - started)}


def _answer_check(endpoint: str, resource: str) -> dict[str, Any]:
    """One GET without the Metadata header, through the library's transport (no proxy)."""
    from ._core.classify import is_imds_server
    from ._core.request import TokenQuery, token_url
    from ._core.steps import HttpAnswer, Send
    from ._settings import MAX_RESPONSE_BYTES
    from ._transport import default_transport, exchange

    step = Send(
        token_url(endpoint, TokenQuery(resource=resource)), {}, CONNECT_TIMEOUT, ANSWER_TIMEOUT, probe=True
    )
    transport = default_transport()
    started = time.monotonic()
    try:
        result = exchange(transport, step, MAX_RESPONSE_BYTES, time.monotonic)
    finally:
        transport.close()
    elapsed = _ms(time.monotonic() - started)
    if not isinstance(result, HttpAnswer):
        return {
            "ok": False,
            "status": None,
            "ms": elapsed,
            "error": result.kind.value,
            "detail": result.detail,
        }
    server = result.headers.get("server")
    error_code = _json_error_code(result.body)
    markers = {"server_header": is_imds_server(result.headers), "json_error": error_code is not None}
    return {
        "ok": True,
        "status": result.status,
        "ms": elapsed,
        "server": server,
        "json_error": error_code,
        "imds_markers": markers,
        # A real IMDS refuses a request without the Metadata header (400) with its markers.
        "looks_like_imds": result.status == 400 and any(markers.values()),
    }


def _json_error_code(body: bytes) -> str | None:
    from ._core.redact import redact

    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    code = data.get("error") if isinstance(data, dict) else None
    return redact(code, 100) if isinstance(code, str) else None


def _identity_check(args: argparse.Namespace, endpoint: str, resource: str) -> dict[str, Any]:
    from ._client import ImdsClient
    from ._errors import CredentialUnavailableError, ImdsError

    result: dict[str, Any] = {"requested": describe_identity(args), "resource": resource}
    started = time.monotonic()
    client = ImdsClient(
        endpoint=endpoint,
        connect_timeout=CONNECT_TIMEOUT,
        first_answer_timeout=ANSWER_TIMEOUT,
        timeout=args.timeout if args.timeout is not None else DEFAULT_TOKEN_TIMEOUT,
        on_retry=progress_reporter(),
    )
    with client:
        try:
            answer = client.get_token(
                resource, client_id=args.client_id, object_id=args.object_id, msi_res_id=args.msi_res_id
            )
        except ImdsError as exc:
            result.update(
                result="unavailable" if isinstance(exc, CredentialUnavailableError) else "failed",
                status=exc.status,
                error_code=exc.error_code,
                error_description=exc.error_description,
                attempts=exc.attempts,
                message=one_line(exc.message),
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        else:
            result.update(
                result="available",
                client_id=answer.client_id,
                token_type=answer.token_type,
                expires_in=answer.expires_in,
            )
    result["ms"] = _ms(time.monotonic() - started)
    return result


# -- what it means and what to do ------------------------------------------------------------
def _endpoint_findings(report: Report, source: str, env_value: str | None) -> None:
    if source == "environment":
        report.add(
            "info",
            f"{ENDPOINT_ENV}={env_value} overrides the IMDS endpoint ({DEFAULT_ENDPOINT}).",
            f"Intended for emulators and pod identity; unset {ENDPOINT_ENV} to use the real IMDS.",
        )
    elif source == "option" and env_value:
        report.add(
            "info",
            f"--endpoint overrides {ENDPOINT_ENV}={env_value} for this run.",
            f"Programs without --endpoint use {ENDPOINT_ENV}; probe again without --endpoint "
            "to check what they see.",
        )
    proxies = [name for name in report.proxy["variables"] if name.upper() != "NO_PROXY"]
    if proxies:
        covered = report.proxy["no_proxy_covers_endpoint"]
        host = urlsplit(report.endpoint["url"]).hostname
        report.add(
            "info" if covered else "warning",
            f"Proxy variable(s) set: {', '.join(proxies)}. This tool and azure-imds-credential "
            "bypass them for IMDS, but other clients may send IMDS requests through the proxy "
            "(which answers 400/403/407/502 or hangs).",
            f"NO_PROXY already covers {host}; nothing to do."
            if covered
            else f'Add {host} to NO_PROXY (export NO_PROXY="$NO_PROXY,{host}") so that every '
            "client reaches IMDS directly, as Microsoft requires.",
        )


def _diagnose(report: Report, args: argparse.Namespace) -> None:
    endpoint = report.endpoint["url"]
    from_env = report.endpoint["source"] == "environment"
    host, port = _host_port(endpoint)
    where = f"{host}:{port}"
    connect, answer, identity = report.connect, report.answer, report.identity
    check_env = f" Check {ENDPOINT_ENV}: it points there." if from_env else ""

    if not connect["ok"]:
        error = connect["error"]
        if error == "refused":
            report.add(
                "error",
                f"Nothing listens at {where} (connection refused): not on Azure, or IMDS blocked.",
                "Managed identity works only on Azure (VM, scale set, ...). Off Azure, use another "
                f"credential, or an IMDS emulator via {ENDPOINT_ENV}.{check_env}",
            )
        elif error == "timeout":
            report.add(
                "error",
                f"No answer to connect at {where} within {CONNECT_TIMEOUT:g} s (packets dropped): "
                "not on Azure, or a firewall drops traffic to IMDS.",
                "On Azure, allow outbound traffic to 169.254.169.254:80 (host firewall, iptables, "
                f"container network policy). Off Azure, use another credential.{check_env}",
            )
        else:
            report.add(
                "error",
                f"Cannot connect to {where}: {connect.get('detail') or error}.",
                f"Check the endpoint {endpoint} and the network.{check_env}",
            )
        _conclude(report, EXIT_UNAVAILABLE, "unavailable")
        return

    if answer.get("status") is None:
        report.add(
            "error",
            f"{where} accepts connections but sent no answer to a request without the Metadata "
            f"header within {ANSWER_TIMEOUT:g} s ({answer.get('error')}); real IMDS answers it at "
            "once (400).",
            f"Something other than IMDS listens at {where} (a proxy, a sidecar, a stuck "
            f"service): find and fix it, or point {ENDPOINT_ENV} at a working IMDS.",
        )
        _conclude(report, EXIT_UNAVAILABLE, "unavailable")
        return

    if not answer["looks_like_imds"]:
        status = answer["status"]
        report.add(
            "error" if identity.get("result") != "available" else "warning",
            f"The answer at {where} (HTTP {status}, Server: {answer.get('server') or 'none'}) has "
            "neither IMDS's Server: IMDS/... header nor its JSON error (and real IMDS answers "
            "400 to a request without the Metadata header).",
            "Something else answers on this address: Docker Desktop's proxy (its 403), another "
            "cloud's metadata service, a captive portal, or a proxy. Run on an Azure host, or "
            f"point {ENDPOINT_ENV} at an IMDS emulator.",
        )

    result = identity.get("result")
    if result == "available":
        _conclude(report, EXIT_OK, "ok")
        return
    status = identity.get("status")
    requested = identity["requested"]
    description = identity.get("error_description") or identity.get("message") or ""
    if result == "unavailable":
        if status == 400 and answer["looks_like_imds"]:
            if requested == "system-assigned":
                fix = (
                    "Enable the system-assigned identity (az vm identity assign -g RG -n VM), or "
                    "ask for a user-assigned one with --client-id/--object-id/--msi-res-id."
                )
            else:
                fix = (
                    "Check the id, and that this identity is assigned to this VM (az vm identity "
                    "assign -g RG -n VM --identities ARM_ID); a new assignment can take a few "
                    "seconds to appear."
                )
            report.add("error", f"IMDS has no {requested} identity here: {description}", fix)
        elif answer["looks_like_imds"]:
            report.add(
                "error",
                f"IMDS gave no token for the {requested} identity: {description}",
                "Run with --debug to see every attempt.",
            )
        _conclude(report, EXIT_UNAVAILABLE, "unavailable")
        return
    if not answer["looks_like_imds"]:
        # The failures came from something that is not IMDS: for a chain, IMDS is unavailable.
        _conclude(report, EXIT_UNAVAILABLE, "unavailable")
        return
    if status in (404, 410):
        what, fix = "IMDS is updating", "Wait: IMDS is back within 70 s; run the probe again in a minute."
    elif status == 429:
        what, fix = (
            "IMDS is throttling (20 requests/s, 5 at once per VM)",
            "Find the process that floods IMDS; cache tokens (the credential does).",
        )
    else:
        what, fix = (
            "IMDS keeps failing",
            "Try again; if it persists, restart the VM agent or the VM, or contact Azure support.",
        )
    report.add("error", f"{what}: {description}", fix)
    _conclude(report, EXIT_FAILURE, "failure")


def _conclude(report: Report, code: int, verdict: str) -> None:
    report.exit_code, report.verdict = code, verdict


# -- text output -----------------------------------------------------------------------------
def format_report(report: Report) -> str:
    endpoint, proxy = report.endpoint, report.proxy
    connect, answer, identity = report.connect, report.answer, report.identity
    source = {"option": "from --endpoint", "environment": f"from {ENDPOINT_ENV}", "default": "default"}
    lines = [f"IMDS probe: {endpoint['url']} ({source[endpoint['source']]})"]

    if proxy["variables"]:
        names = ", ".join(f"{name}={value}" for name, value in proxy["variables"].items())
        lines.append(f"  proxies   {names} (bypassed for IMDS: direct connection)")
    else:
        lines.append("  proxies   none set")

    if connect["ok"]:
        lines.append(f"  connect   ok in {connect['ms']} ms")
    else:
        took = f" after {connect['ms']} ms" if connect.get("ms") is not None else ""
        lines.append(f"  connect   failed: {connect.get('detail') or connect['error']}{took}")

    if answer.get("skipped"):
        lines.append(f"  answer    not checked ({answer['skipped']})")
    elif answer.get("status") is None:
        lines.append(f"  answer    none after {answer['ms']} ms ({answer.get('error')})")
    else:
        marks = []
        if answer["server"]:
            marks.append(f"Server: {answer['server']}")
        if answer["json_error"]:
            marks.append(f"JSON error {answer['json_error']}")
        looks = "looks like IMDS" if answer["looks_like_imds"] else "NOT IMDS"
        lines.append(
            f"  answer    HTTP {answer['status']} in {answer['ms']} ms"
            + (f"; {'; '.join(marks)}" if marks else "; no IMDS markers")
            + f" -> {looks}"
        )

    head = f"  identity  {identity['requested']} for {identity['resource']}: "
    result = identity.get("result")
    if result == "available":
        lines.append(
            head + f"available (token expires in {identity['expires_in']} s, client_id "
            f"{identity['client_id']}, {identity['ms']} ms)"
        )
    elif result == "skipped":
        lines.append(head + f"not checked ({identity['reason']})")
    else:
        status = identity.get("status")
        said = (
            f"HTTP {status} {identity.get('error_code') or ''}: {identity.get('error_description') or ''}"
            if status is not None
            else identity.get("message")
        )
        lines.append(head + f"{result}: {said}")

    lines.append(f"result: {report.verdict} (exit {report.exit_code})")
    if report.findings:
        lines.append("findings:")
        for finding in report.findings:
            lines.append(f"  [{finding.severity}] {finding.problem}")
            lines.append(f"      fix: {finding.fix}")
    return "\n".join(lines)


__all__ = ["add_probe_command", "run_probe"]
