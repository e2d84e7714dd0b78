"""An azure-core HttpTransport over the standard library's http.client, for http:// endpoints.

IMDS is always http://169.254.169.254. Loading requests and urllib3 for one link-local GET
an hour cost ~40 ms on the first token and ~8.5 MiB, and requests' per-call machinery
(sessions, cookies, environment merging) doubled a cache miss; http.client is already loaded
by azure-core. This is the sync shell's default for http:// endpoints only (https:// keeps
azure-core's RequestsTransport), and any azure-core transport can still be passed in.
Loaded on the first request, not at import.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import ServiceRequestError, ServiceRequestTimeoutError, ServiceResponseError
from azure.core.pipeline.transport import HttpTransport

_CHUNK = 16 * 1024


def _readable(sock: socket.socket) -> bool:
    """An idle keep-alive socket is readable only when the server closed it (or sent
    something unasked): then it must not be reused. poll() has no descriptor limit."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class StdlibResponse:
    """The part of an azure-core response that `_transport.exchange` reads."""

    def __init__(self, response: http.client.HTTPResponse, release: Callable[[bool], None]) -> None:
        self._response = response
        self._release: Callable[[bool], None] | None = release
        self._drained = False
        self.status_code: int = response.status
        self.headers: dict[str, str] = dict(response.getheaders())

    def iter_bytes(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._response.read1(_CHUNK)  # what has arrived: a trickle is seen
            except http.client.HTTPException as exc:
                # IncompleteRead and the like: the answer broke off.
                raise ServiceResponseError(type(exc).__name__, error=exc) from exc
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
        release, self._release = self._release, None
        # Closes the answer (not the socket): http.client then lets the connection send again.
        self._response.close()
        if release is not None:
            # The connection is reused only after a complete answer that did not ask to close.
            release(self._drained and not self._response.will_close)


class StdlibTransport(HttpTransport):  # type: ignore[type-arg]
    """Keep-alive connections, no proxies, no redirects, separate connect and read timeouts.
    Thread-safe: idle connections wait in a small pool."""

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

    def send(self, request: Any, **kwargs: Any) -> StdlibResponse:
        url = urlsplit(request.url)
        netloc = url.netloc
        conn = self._connection(netloc, kwargs.get("connection_timeout", 1.0))
        try:
            assert conn.sock is not None
            conn.sock.settimeout(kwargs.get("read_timeout", 30.0))
            target = url.path + (f"?{url.query}" if url.query else "")
            conn.request(request.method, target, headers=dict(request.headers))
            response = conn.getresponse()
        except http.client.HTTPException as exc:
            conn.close()
            raise ServiceResponseError(type(exc).__name__, error=exc) from exc
        except BaseException:
            conn.close()  # timeouts and resets: `_transport.failure_from_exception` maps them
            raise

        def release(reusable: bool) -> None:
            if reusable and not self._closed:
                with self._lock:
                    self._idle.append((netloc, conn))
            else:
                conn.close()

        return StdlibResponse(response, release)
