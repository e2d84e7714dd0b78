"""Sending one IMDS request through an azure-core transport (the sync half; shared helpers).

Transports are imported on first use: importing the package must not load the HTTP stack.
"""

from __future__ import annotations

import errno
import functools
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
    directly (a proxy answers 400/403/407/502 or hangs).

    For http:// endpoints (IMDS is always http://169.254.169.254) an azure-core transport over
    the standard library's http.client, which azure-core has already imported: loading
    requests and urllib3 for one link-local GET an hour cost ~40 ms on the first token, and
    requests' per-call machinery (sessions, cookies, env merging) doubled a cache miss. For
    https:// endpoints, azure-core's RequestsTransport (certifi's CA bundle, as before).
    """
    if endpoint is not None and endpoint.startswith("http://"):
        stdlib: HttpTransport[Any, Any] = _stdlib_transport_class()()
        return stdlib
    from azure.core.pipeline.transport import RequestsTransport

    transport: HttpTransport[Any, Any] = RequestsTransport(use_env_settings=False)
    return transport


class _StdlibResponse:
    """The part of an azure-core response that `exchange` reads, over http.client."""

    def __init__(self, response: Any, release: Callable[[bool], None]) -> None:
        self._response = response
        self._release = release
        self._drained = False
        self.status_code: int = response.status
        self.headers: dict[str, str] = dict(response.getheaders())

    def iter_bytes(self) -> Iterator[bytes]:
        import http.client

        from azure.core.exceptions import ServiceResponseError

        while True:
            try:
                chunk = self._response.read1(_CHUNK)  # what has arrived: a trickle is seen
            except http.client.HTTPException as exc:
                # IncompleteRead and the like: the answer broke off (`_causes` finds it).
                raise ServiceResponseError(f"{type(exc).__name__}", error=exc) from exc
            if not chunk:
                missing = self._response.length  # None when not length-delimited
                if missing:
                    # The server closed before sending the promised Content-Length.
                    short = http.client.IncompleteRead(b"", missing)
                    raise ServiceResponseError("IncompleteRead", error=short) from short
                self._drained = True
                return
            yield chunk

    def close(self) -> None:
        release, self._release = self._release, _no_release
        # Closes the answer (not the socket): http.client then lets the connection send again.
        self._response.close()
        # The connection is reused only after a complete answer that did not ask to close it.
        release(self._drained and not self._response.will_close)


_CHUNK = 16 * 1024


def _no_release(reusable: bool) -> None:
    return None


@functools.cache
def _stdlib_transport_class() -> Any:
    import http.client
    import select
    import threading
    from urllib.parse import urlsplit

    from azure.core.exceptions import ServiceRequestError, ServiceRequestTimeoutError, ServiceResponseError
    from azure.core.pipeline.transport import HttpTransport

    def _readable(sock: socket.socket) -> bool:
        """An idle keep-alive socket is readable only when the server closed it (or sent
        something unasked): then it must not be reused. poll() has no descriptor limit."""
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])

    class StdlibTransport(HttpTransport):  # type: ignore[type-arg]
        """azure-core transport over http.client: keep-alive connections, no proxies, no
        redirects, separate connect and read timeouts. Thread-safe (a small pool)."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._idle: list[tuple[str, http.client.HTTPConnection]] = []
            self._closed = False

        def open(self) -> None:
            self._closed = False

        def close(self) -> None:
            with self._lock:
                idle, self._idle = self._idle, []
                self._closed = True
            for _, conn in idle:
                conn.close()

        def __enter__(self) -> StdlibTransport:
            self.open()
            return self

        def __exit__(self, *args: object) -> None:
            self.close()

        def _connection(self, netloc: str, connect_timeout: float) -> http.client.HTTPConnection:
            with self._lock:
                while self._idle:
                    key, conn = self._idle.pop()
                    if key == netloc and conn.sock is not None and not _readable(conn.sock):
                        return conn
                    conn.close()
            parts = urlsplit(f"//{netloc}")
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=connect_timeout)
            try:
                conn.connect()
            except TimeoutError as exc:
                conn.close()
                raise ServiceRequestTimeoutError("connect timed out", error=exc) from exc
            except OSError as exc:
                conn.close()
                raise ServiceRequestError(f"{type(exc).__name__}: {exc}", error=exc) from exc
            return conn

        def send(self, request: Any, **kwargs: Any) -> _StdlibResponse:
            connect_timeout = kwargs.get("connection_timeout", 1.0)
            read_timeout = kwargs.get("read_timeout", 30.0)
            url = urlsplit(request.url)
            netloc = url.netloc
            target = url.path + (f"?{url.query}" if url.query else "")
            conn = self._connection(netloc, connect_timeout)
            try:
                assert conn.sock is not None
                conn.sock.settimeout(read_timeout)
                conn.request(request.method, target, headers=dict(request.headers))
                response = conn.getresponse()
            except http.client.HTTPException as exc:
                conn.close()
                raise ServiceResponseError(f"{type(exc).__name__}", error=exc) from exc
            except BaseException:
                conn.close()
                raise

            def release(reusable: bool) -> None:
                if reusable and not self._closed:
                    with self._lock:
                        self._idle.append((netloc, conn))
                else:
                    conn.close()

            return _StdlibResponse(response, release)

    return StdlibTransport


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
