"""Sending one IMDS request through an azure-core transport (the sync half; shared helpers).

Transports are imported on first use: importing the package must not load the HTTP stack.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._core.steps import FailureKind, HttpAnswer, Send, TransportFailure

if TYPE_CHECKING:
    from azure.core.pipeline.transport import HttpTransport
    from azure.core.rest import HttpRequest

_UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.EADDRNOTAVAIL,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps: azure-core, requests, urllib3 and aiohttp each
    wrap the socket error in their own way (`inner_exception`, `reason`, `os_error`, args)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack and len(seen) < 32:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend(
            [item.__cause__, item.__context__, *item.args]
            + [getattr(item, name, None) for name in ("inner_exception", "reason", "os_error")]
        )


def failure_from_exception(exc: BaseException) -> TransportFailure:
    """Map a transport exception to what it means for IMDS.

    Decided on everything the exception wraps, by priority, because transports disagree on
    the outer type: azure-core's asyncio-requests transport raises a plain
    ServiceResponseError for a read timeout, aiohttp's a ServiceRequestError for a reset.
    """
    from azure.core.exceptions import (
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseTimeoutError,
    )

    causes = list(_causes(exc))
    names = {type(cause).__name__ for cause in causes}

    def found(kind: FailureKind, detail: str) -> TransportFailure:
        return TransportFailure(kind, detail, exc)

    for cause in causes:
        if isinstance(cause, (ConnectionRefusedError, socket.gaierror)) or (
            isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS
        ):
            return found(FailureKind.UNREACHABLE, type(cause).__name__)
    if isinstance(exc, ServiceRequestTimeoutError) or names & {"ConnectTimeout", "ConnectTimeoutError"}:
        return found(FailureKind.CONNECT_TIMEOUT, type(exc).__name__)
    if (
        isinstance(exc, ServiceResponseTimeoutError)
        or names & {"ReadTimeout", "ReadTimeoutError"}
        or any(isinstance(cause, TimeoutError) for cause in causes)
    ):
        return found(FailureKind.READ_TIMEOUT, type(exc).__name__)
    resets = names & _RESET_NAMES
    if resets or any(isinstance(cause, ConnectionResetError) for cause in causes):
        return found(FailureKind.RESET, sorted(resets)[0] if resets else "ConnectionResetError")
    if isinstance(exc, ServiceRequestError):
        # Could not send at all, for a reason not recognised above: no IMDS to talk to.
        return found(FailureKind.UNREACHABLE, type(exc).__name__)
    return found(FailureKind.RESET, type(exc).__name__)


_RESET_NAMES = frozenset(
    {"RemoteDisconnected", "ServerDisconnectedError", "ProtocolError", "IncompleteRead", "ClientPayloadError"}
)


def build_request(step: Send) -> HttpRequest:
    from azure.core.rest import HttpRequest

    return HttpRequest("GET", step.url, headers=dict(step.headers))


def send_kwargs(step: Send, *, timeout_pair: bool = False) -> dict[str, Any]:
    """Per-request options of azure-core transports. `stream` lets us stop reading at the size
    cap instead of buffering whatever a foreign server sends. `timeout_pair`: the transport
    takes only `connection_timeout`, as requests' (connect, read) pair (asyncio-requests)."""
    if timeout_pair:
        return {"stream": True, "connection_timeout": (step.connect_timeout, step.read_timeout)}
    return {"stream": True, "connection_timeout": step.connect_timeout, "read_timeout": step.read_timeout}


def answer(status: int, headers: Iterable[tuple[str, str]], body: bytes, truncated: bool) -> HttpAnswer:
    return HttpAnswer(status, {k.lower(): v for k, v in headers}, body, truncated)


class BodyTooSlow(Exception):
    """The body trickled in past the attempt's time limit."""


class BodyBuffer:
    """Collects at most `cap` bytes of a body before `limit` (monotonic) passes."""

    def __init__(self, cap: int, limit: float, monotonic: Callable[[], float]) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._cap = cap
        self._limit = limit
        self._monotonic = monotonic
        self.truncated = False

    def add(self, chunk: bytes) -> bool:
        """Keep `chunk`; True once the cap is passed (stop reading: it is not IMDS's answer)."""
        self._parts.append(chunk)
        self._size += len(chunk)
        if self._size > self._cap:
            self.truncated = True
            return True
        if self._monotonic() > self._limit:
            raise BodyTooSlow
        return False

    def body(self) -> bytes:
        return b"".join(self._parts)[: self._cap]


def default_transport(endpoint: str | None = None) -> HttpTransport[Any, Any]:
    """The transport a client makes for itself; proxies are never used: IMDS must be reached
    directly (a proxy answers 400/403/407/502 or hangs). http:// endpoints (IMDS) get the
    http.client transport (`_stdlib_transport` says why), https:// azure-core's requests one.
    """
    if endpoint is not None and endpoint.startswith("http://"):
        from ._stdlib_transport import StdlibTransport

        return StdlibTransport()
    from azure.core.pipeline.transport import RequestsTransport

    transport: HttpTransport[Any, Any] = RequestsTransport(use_env_settings=False)
    return transport


def exchange(
    transport: HttpTransport[Any, Any], step: Send, cap: int, monotonic: Callable[[], float]
) -> HttpAnswer | TransportFailure:
    """Send one request and read its (capped) answer; never raises for network trouble."""
    from azure.core.exceptions import AzureError

    buffer = BodyBuffer(cap, monotonic() + step.connect_timeout + step.read_timeout, monotonic)
    try:
        response = transport.send(build_request(step), **send_kwargs(step))
    except (AzureError, OSError) as exc:
        return failure_from_exception(exc)
    try:
        for chunk in response.iter_bytes():
            if buffer.add(chunk):
                break
    except BodyTooSlow:
        return TransportFailure(FailureKind.READ_TIMEOUT, "body too slow")
    except (AzureError, OSError) as exc:
        return failure_from_exception(exc)
    finally:
        response.close()
    return answer(response.status_code, response.headers.items(), buffer.body(), buffer.truncated)
